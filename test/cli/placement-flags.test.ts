import { describe, expect, it } from 'vitest';
import { placementPrefs, serviceMode } from '../../src/cli/commands/service-flags';

describe('placement flags', () => {
  it('collect spread preferences in order', () => {
    const parse = placementPrefs('--placement-pref');
    expect(parse(' spread=node.labels.rack', parse('spread=node.labels.zone'))).toEqual(['node.labels.zone', 'node.labels.rack']);
  });

  it('refuse a preference that is not spread=…', () => {
    expect(() => placementPrefs('--placement-pref-add')('node.labels.zone')).toThrow(
      '--placement-pref-add must be spread=node.labels.<name>, got "node.labels.zone"',
    );
    expect(() => placementPrefs('--placement-pref')('binpack=x')).toThrow('--placement-pref must be spread=node.labels.<name>');
  });

  it('take replicated or global as the mode', () => {
    expect(serviceMode('global')).toBe('global');
    expect(serviceMode('replicated')).toBe('replicated');
    expect(() => serviceMode('job')).toThrow('--mode must be replicated or global, got "job"');
  });
});
