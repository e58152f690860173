import { describe, expect, it } from 'vitest';
import { validateServiceSpec } from '../../src/manager/validate';
import type { Placement } from '../../src/gen/shoal/v1/Placement';

const withPlacement = (placement: Placement) => validateServiceSpec({ name: 'web', task_template: { container: { image: 'busybox' }, placement } });

describe('placement preferences and platforms', () => {
  it('keeps spread preferences in order and platforms as given', () => {
    const out = withPlacement({
      preferences: [{ spread: 'node.labels.zone' }, { spread: 'Node.Labels.rack' }],
      platforms: [{ os: 'linux', architecture: 'amd64' }, { architecture: 'arm64' }],
    });
    expect(out.task_template!.placement).toEqual({
      constraints: [],
      max_replicas: 0,
      preferences: [{ spread: 'node.labels.zone' }, { spread: 'Node.Labels.rack' }],
      platforms: [
        { os: 'linux', architecture: 'amd64' },
        { os: '', architecture: 'arm64' },
      ],
    });
  });

  it.each<[string, Placement, string]>([
    ['a spread that is not a label', { preferences: [{ spread: 'node.labels.zone' }, { spread: 'node.hostname' }] }, 'task_template.placement.preferences[1].spread: "node.hostname" does not name a node label: use node.labels.<name>'],
    ['an empty spread', { preferences: [{}] }, 'task_template.placement.preferences[0].spread: "" does not name a node label: use node.labels.<name>'],
    ['a label prefix without a name', { preferences: [{ spread: 'node.labels.' }] }, 'task_template.placement.preferences[0].spread: "node.labels." does not name a node label'],
    ['an empty platform', { platforms: [{ os: '', architecture: '' }] }, 'task_template.placement.platforms[0]: must set os or architecture'],
    ['a platform with whitespace', { platforms: [{ os: 'linux', architecture: 'amd 64' }] }, 'task_template.placement.platforms[0]: must not contain whitespace'],
  ])('rejects %s', (_case, placement, message) => {
    expect(() => withPlacement(placement)).toThrow(`invalid service spec: ${message}`);
  });
});
