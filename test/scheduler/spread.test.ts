import { describe, expect, it } from 'vitest';
import type { Node__Output } from '../../src/gen/shoal/v1/Node';
import { schedule } from '../../src/scheduler/schedule';
import { GiB, node, task, tasks } from './fixtures';

const countBy = (placements: { nodeId: string }[], key: (nodeId: string) => string = (id) => id) => {
  const counts: Record<string, number> = {};
  for (const p of placements) counts[key(p.nodeId)] = (counts[key(p.nodeId)] ?? 0) + 1;
  return counts;
};

/** Zone a: 1 node, b: 2 nodes, c: 3 nodes. */
const zoned = (o: { memory?: number } = {}): Node__Output[] => [
  node('a1', { labels: { zone: 'a' }, ...o }),
  node('b1', { labels: { zone: 'b' }, ...o }),
  node('b2', { labels: { zone: 'b' }, ...o }),
  node('c1', { labels: { zone: 'c' }, ...o }),
  node('c2', { labels: { zone: 'c' }, ...o }),
  node('c3', { labels: { zone: 'c' }, ...o }),
];
const zoneOf = (id: string) => id[0];

describe('spread', () => {
  it('puts 10 replicas on 5 nodes, 2 each', () => {
    const nodes = ['n1', 'n2', 'n3', 'n4', 'n5'].map((id) => node(id));
    const { placements, unplaced } = schedule(nodes, [], tasks(10));
    expect(unplaced).toEqual([]);
    expect(countBy(placements)).toEqual({ n1: 2, n2: 2, n3: 2, n4: 2, n5: 2 });
  });

  it('spreads over a label’s values however many nodes each has, then evenly within a value', () => {
    const { placements } = schedule(zoned(), [], tasks(9, { spread: ['zone'] }));
    expect(countBy(placements, zoneOf)).toEqual({ a: 3, b: 3, c: 3 });
    expect(countBy(placements)).toEqual({ a1: 3, b1: 2, b2: 1, c1: 1, c2: 1, c3: 1 });
  });

  it('groups the nodes without the label together', () => {
    const nodes = [...zoned(), node('x1'), node('x2')];
    const { placements } = schedule(nodes, [], tasks(8, { spread: ['zone'] }));
    expect(countBy(placements, zoneOf)).toEqual({ a: 2, b: 2, c: 2, x: 2 });
    expect(countBy(placements)).toMatchObject({ x1: 1, x2: 1 });
  });

  it('counts the service’s running tasks per value, and only that service’s', () => {
    const active = [
      ...[1, 2, 3].map((i) => task(`old${i}`, { node: 'a1' })),
      ...[1, 2, 3, 4].map((i) => task(`other${i}`, { service: 'other', node: 'b1' })),
    ];
    const { placements } = schedule(zoned(), active, tasks(6, { spread: ['zone'] }));
    expect(countBy(placements, zoneOf)).toEqual({ b: 3, c: 3 });
    // Within b, fewer tasks overall breaks the tie: b2 has none of the other service's.
    expect(countBy(placements)).toMatchObject({ b1: 1, b2: 2 });
  });

  it('applies preferences in order, as a tree', () => {
    const nodes = [
      node('n1', { labels: { zone: 'a', rack: 'r1' } }),
      node('n2', { labels: { zone: 'a', rack: 'r1' } }),
      node('n3', { labels: { zone: 'a', rack: 'r2' } }),
      node('n4', { labels: { zone: 'b', rack: 'r1' } }),
    ];
    const { placements } = schedule(nodes, [], tasks(8, { spread: ['zone', 'rack'] }));
    expect(countBy(placements)).toEqual({ n1: 1, n2: 1, n3: 2, n4: 4 });
  });

  it('leaves out values whose nodes a constraint excludes', () => {
    const { placements } = schedule(zoned(), [], tasks(6, { spread: ['zone'], constraints: ['node.labels.zone!=c'] }));
    expect(countBy(placements, zoneOf)).toEqual({ a: 3, b: 3 });
  });

  it('fills the other values when one is full, with max replicas per node', () => {
    const { placements, unplaced } = schedule(zoned(), [], tasks(12, { spread: ['zone'], maxReplicas: 2 }));
    expect(unplaced).toEqual([]);
    expect(countBy(placements, zoneOf)).toEqual({ a: 2, b: 4, c: 6 });
    expect(Object.values(countBy(placements))).toEqual([2, 2, 2, 2, 2, 2]);
    const over = schedule(zoned(), [], tasks(14, { spread: ['zone'], maxReplicas: 2 }));
    expect(over.placements).toHaveLength(12);
    expect(over.unplaced.map((u) => u.reason)).toEqual([
      'no suitable node (max replicas per node reached on 6 nodes)',
      'no suitable node (max replicas per node reached on 6 nodes)',
    ]);
  });

  it('fills the other values when one runs out of memory', () => {
    const nodes = zoned({ memory: 2 * GiB });
    const { placements, unplaced } = schedule(nodes, [], tasks(9, { spread: ['zone'], memory: GiB }));
    expect(unplaced).toEqual([]);
    expect(countBy(placements, zoneOf)).toEqual({ a: 2, b: 4, c: 3 });
  });

  it('does not count a task on its way out towards spread', () => {
    const active = [task('stopping1', { node: 'n1', desired: 'SHUTDOWN' }), task('stopping2', { node: 'n1', desired: 'SHUTDOWN' }), task('live', { node: 'n2' })];
    expect(schedule([node('n1'), node('n2')], active, tasks(1)).placements).toEqual([{ taskId: 't-1', nodeId: 'n1' }]);
  });

  it('keeps each service within one task of even over 1000 nodes, or over zones of unequal size', () => {
    const nodes = Array.from({ length: 1000 }, (_, i) => node(`n${String(i).padStart(4, '0')}`, { labels: { zone: `z${i % 7 === 0 ? 0 : i % 3}` } }));
    const pending = Array.from({ length: 12 }, (_, s) => tasks(1000, { service: `s${s}`, spread: s % 2 ? ['zone'] : [] })).flat();
    const { placements, unplaced } = schedule(nodes, [], pending);
    expect(unplaced).toEqual([]);
    const zone = new Map(nodes.map((n) => [n.id, n.spec!.labels.zone]));
    const spreadOf = (counts: Record<string, number>, keys: string[]) => {
      const values = keys.map((k) => counts[k] ?? 0);
      return Math.max(...values) - Math.min(...values);
    };
    for (let s = 0; s < 12; s++) {
      const mine = placements.filter((p) => p.taskId.startsWith(`s${s}-`));
      if (s % 2) expect(spreadOf(countBy(mine, (id) => zone.get(id)!), ['z0', 'z1', 'z2'])).toBeLessThanOrEqual(1);
      else expect(spreadOf(countBy(mine), [...zone.keys()])).toBeLessThanOrEqual(1);
    }
  });
});
