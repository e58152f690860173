import { describe, expect, it } from 'vitest';
import { constraintMatches, parseConstraint } from '../../src/scheduler/constraints';
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
