import { describe, expect, it } from 'vitest';
import { constraintMatches, parseConstraint } from '../../src/scheduler/constraints';
import { platformMatches } from '../../src/scheduler/platform';
import { node } from './fixtures';

describe('parseConstraint', () => {
  it('parses fixed keys case-insensitively and keeps label names as written', () => {
    expect(parseConstraint(' Node.Hostname == web1 ')).toEqual({ text: ' Node.Hostname == web1 ', key: 'node.hostname', op: '==', value: 'web1' });
    expect(parseConstraint('node.labels.Zone!=a')).toMatchObject({ key: 'node.labels.Zone', op: '!=', value: 'a' });
  });

  it.each([
    ['zone=a', 'is not key==value or key!=value'],
    ['node.name==a', 'has an unknown key "node.name"'],
    ['node.labels.==a', 'has an unknown key "node.labels."'],
    ['node.id==', 'has an empty value'],
    ['node.id==a==b', 'has more than one operator'],
  ])('rejects %s', (text, message) => {
    expect(() => parseConstraint(text)).toThrow(message);
  });
});

describe('constraintMatches', () => {
  it('treats architecture aliases as equal', () => {
    expect(constraintMatches(parseConstraint('node.platform.arch==amd64'), node('a', { arch: 'x64' }))).toBe(true);
    expect(constraintMatches(parseConstraint('node.platform.arch==aarch64'), node('a', { arch: 'arm64' }))).toBe(true);
    expect(constraintMatches(parseConstraint('node.platform.arch!=arm64'), node('a', { arch: 'x86_64' }))).toBe(true);
  });
});

describe('constraintMatches on every key', () => {
  const a = node('node-a', { hostname: 'alpha', role: 'manager', labels: { zone: 'east' }, os: 'linux', arch: 'amd64' });
  const matches = (text: string) => constraintMatches(parseConstraint(text), a);

  it.each([
    ['node.id==node-a', true],
    ['node.id!=node-a', false],
    ['node.id==node-b', false],
    ['node.hostname==ALPHA', true],
    ['node.hostname!=alpha', false],
    ['node.role==manager', true],
    ['node.role!=worker', true],
    ['node.labels.zone==east', true],
    ['node.labels.zone!=east', false],
    ['node.labels.rack==1', false],
    ['node.labels.rack!=1', true],
    ['node.platform.os==Linux', true],
    ['node.platform.os!=windows', true],
    ['node.platform.arch==x86_64', true],
    ['node.platform.arch!=amd64', false],
  ])('%s is %s', (text, expected) => {
    expect(matches(text)).toBe(expected);
  });

  it('keeps label names case-sensitive, as node labels are', () => {
    expect(matches('node.labels.Zone==east')).toBe(false);
  });
});

describe('platformMatches', () => {
  const arm = node('a', { os: 'linux', arch: 'aarch64' });

  it('accepts any node when the task names no platform', () => {
    expect(platformMatches([], arm)).toBe(true);
  });

  it('needs one entry to match, normalizing os case and architecture names', () => {
    expect(platformMatches([{ os: 'linux', architecture: 'amd64' }], arm)).toBe(false);
    expect(platformMatches([{ os: 'linux', architecture: 'amd64' }, { os: 'Linux', architecture: 'arm64' }], arm)).toBe(true);
    expect(platformMatches([{ os: 'windows', architecture: 'arm64' }], arm)).toBe(false);
  });

  it('treats an empty os or architecture as any', () => {
    expect(platformMatches([{ os: '', architecture: 'arm64' }], arm)).toBe(true);
    expect(platformMatches([{ os: 'linux', architecture: '' }], arm)).toBe(true);
  });
});
