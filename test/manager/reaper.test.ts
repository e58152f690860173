import { describe, expect, it } from 'vitest';
import { nodesToMarkDown } from '../../src/manager/reaper';
import { node } from '../scheduler/fixtures';

const GRACE = 5000;

describe('nodesToMarkDown', () => {
  it('marks a Ready node down once it has had no session for the grace period', () => {
    const missing = new Map<string, number>();
    const nodes = [node('a'), node('b')];
    expect(nodesToMarkDown(nodes, new Set(['b']), missing, 1000, GRACE)).toEqual([]);
    expect(nodesToMarkDown(nodes, new Set(['b']), missing, 5999, GRACE)).toEqual([]);
    expect(nodesToMarkDown(nodes, new Set(['b']), missing, 6000, GRACE)).toEqual(['a']);
  });

  it('starts counting again when a node has a session in between', () => {
    const missing = new Map<string, number>();
    const nodes = [node('a')];
    nodesToMarkDown(nodes, new Set(), missing, 0, GRACE);
    nodesToMarkDown(nodes, new Set(['a']), missing, 4000, GRACE);
    expect(missing.size).toBe(0);
    expect(nodesToMarkDown(nodes, new Set(), missing, 8000, GRACE)).toEqual([]);
    expect(nodesToMarkDown(nodes, new Set(), missing, 13_000, GRACE)).toEqual(['a']);
  });

  it('leaves nodes that are already down, and connected ones, alone', () => {
    const missing = new Map<string, number>();
    const nodes = [node('down', { state: 'NODE_DOWN' }), node('here')];
    nodesToMarkDown(nodes, new Set(['here']), missing, 0, GRACE);
    expect(nodesToMarkDown(nodes, new Set(['here']), missing, 60_000, GRACE)).toEqual([]);
  });

  it('marks nothing down before a new leader has given every node the grace to reconnect', () => {
    const missing = new Map<string, number>();
    const nodes = [node('a')];
    expect(nodesToMarkDown(nodes, new Set(), missing, 0, GRACE, 15_000)).toEqual([]);
    expect(nodesToMarkDown(nodes, new Set(), missing, 10_000, GRACE, 15_000)).toEqual([]);
    expect(nodesToMarkDown(nodes, new Set(), missing, 15_000, GRACE, 15_000)).toEqual(['a']);
  });
});
