import { describe, expect, it } from 'vitest';
import { partitionTasks, schedule } from '../../src/scheduler/schedule';
import { GiB, node, task, tasks } from './fixtures';

const countBy = (placements: { nodeId: string }[]) => {
  const counts: Record<string, number> = {};
  for (const p of placements) counts[p.nodeId] = (counts[p.nodeId] ?? 0) + 1;
  return counts;
};

describe('schedule', () => {
  it('spreads replicas evenly over nodes', () => {
    const { placements, unplaced } = schedule([node('a'), node('b'), node('c')], [], tasks(6));
    expect(unplaced).toEqual([]);
    expect(countBy(placements)).toEqual({ a: 2, b: 2, c: 2 });
  });

  it('prefers nodes with fewer tasks of the service, then fewer tasks overall, then the lower id', () => {
    const active = [
      task('x1', { service: 'web', node: 'a' }),
      task('o1', { service: 'other', node: 'b' }),
      task('o2', { service: 'other', node: 'b' }),
    ];
    const { placements } = schedule([node('a'), node('b'), node('c')], active, tasks(3, { service: 'web' }));
    // c is empty; then b (no web task) despite its 2 others; then a and c tie on both counts and a has the lower id.
    expect(placements.map((p) => p.nodeId)).toEqual(['c', 'b', 'a']);
    const other = [task('o3', { service: 'other', node: 'a' })];
    expect(schedule([node('a'), node('b')], other, tasks(1, { service: 'web' })).placements).toEqual([{ taskId: 'web-1', nodeId: 'b' }]);
  });

  it('is deterministic whatever the input order', () => {
    const nodes = [node('a'), node('b'), node('c'), node('d')];
    const pending = [...tasks(5, { service: 's1' }), ...tasks(3, { service: 's2' })];
    const first = schedule(nodes, [], pending);
    const second = schedule([...nodes].reverse(), [], [...pending].reverse());
    expect(second).toEqual(first);
  });

  it('skips down, unknown and disconnected nodes and paused or drained ones', () => {
    const nodes = [
      node('a', { state: 'NODE_DOWN' }),
      node('b', { state: 'NODE_DISCONNECTED' }),
      node('c', { availability: 'drain' }),
      node('d', { availability: 'pause' }),
      node('e'),
    ];
    const { placements } = schedule(nodes, [], tasks(3));
    expect(countBy(placements)).toEqual({ e: 3 });
  });

  it('explains why nothing fits when every node is down or drained', () => {
    const nodes = [node('a', { state: 'NODE_DOWN' }), node('b', { state: 'NODE_UNKNOWN' }), node('c', { availability: 'drain' })];
    const { placements, unplaced } = schedule(nodes, [], tasks(2));
    expect(placements).toEqual([]);
    expect(unplaced).toEqual([
      { taskId: 't-1', reason: 'no suitable node (2 nodes not ready; 1 node paused or drained)' },
      { taskId: 't-2', reason: 'no suitable node (2 nodes not ready; 1 node paused or drained)' },
    ]);
  });

  it('says so when the cluster has no nodes', () => {
    expect(schedule([], [], tasks(1)).unplaced).toEqual([{ taskId: 't-1', reason: 'no suitable node (no nodes in the cluster)' }]);
  });

  it('places until memory runs out, counting active reservations, and explains the rest', () => {
    const nodes = [node('a', { memory: 4 * GiB }), node('b', { memory: 4 * GiB })];
    const active = [task('old', { service: 'other', node: 'a', memory: 2 * GiB })];
    const { placements, unplaced } = schedule(nodes, active, tasks(5, { memory: 1 * GiB }));
    // a has 2 GiB left, b has 4 GiB: 6 tasks of 1 GiB would fit, 5 asked.
    expect(placements).toHaveLength(5);
    expect(countBy(placements)).toEqual({ a: 2, b: 3 });
    const more = schedule(nodes, active, tasks(8, { memory: 1 * GiB }));
    expect(more.placements).toHaveLength(6);
    expect(more.unplaced).toEqual([
      { taskId: 't-7', reason: 'no suitable node (insufficient memory on 2 nodes)' },
      { taskId: 't-8', reason: 'no suitable node (insufficient memory on 2 nodes)' },
    ]);
  });

  it('checks cpu reservations', () => {
    const { placements, unplaced } = schedule([node('a', { cpus: 2e9 })], [], tasks(3, { cpus: 1e9 }));
    expect(placements).toHaveLength(2);
    expect(unplaced[0].reason).toBe('no suitable node (insufficient cpu on 1 node)');
  });

  it('shares capacity between services in one pass', () => {
    const nodes = [node('a', { memory: 2 * GiB })];
    const pending = [...tasks(1, { service: 's1', memory: GiB }), ...tasks(2, { service: 's2', memory: GiB })];
    const { placements, unplaced } = schedule(nodes, [], pending);
    expect(placements.map((p) => p.taskId)).toEqual(['s1-1', 's2-1']);
    expect(unplaced.map((u) => u.taskId)).toEqual(['s2-2']);
  });

  it('honours == and != constraints on fixed keys and labels', () => {
    const nodes = [
      node('a', { labels: { zone: 'a' }, role: 'manager', hostname: 'alpha' }),
      node('b', { labels: { zone: 'b' }, hostname: 'beta' }),
      node('c', { hostname: 'gamma', arch: 'x86_64' }),
    ];
    const on = (constraints: string[]) => Object.keys(countBy(schedule(nodes, [], tasks(6, { constraints })).placements)).sort();
    expect(on(['node.labels.zone==a'])).toEqual(['a']);
    expect(on(['node.labels.zone!=a'])).toEqual(['b', 'c']); // a missing label is "not equal"
    expect(on(['node.role==manager'])).toEqual(['a']);
    expect(on(['node.role!=manager'])).toEqual(['b', 'c']);
    expect(on(['node.hostname==BETA'])).toEqual(['b']);
    expect(on(['node.id!=a', 'node.id!=b'])).toEqual(['c']);
    expect(on(['node.platform.os==linux', 'node.platform.arch==amd64'])).toEqual(['a', 'b', 'c']);
  });

  it('names each unsatisfied constraint in the explanation', () => {
    const nodes = [node('a', { labels: { zone: 'a' }, memory: GiB }), node('b', { labels: { zone: 'b' } }), node('c')];
    const { unplaced } = schedule(nodes, [], tasks(1, { memory: 2 * GiB, constraints: ['node.labels.zone==a'] }));
    expect(unplaced).toEqual([
      { taskId: 't-1', reason: 'no suitable node (constraint node.labels.zone==a not satisfied on 2 nodes; insufficient memory on 1 node)' },
    ]);
  });

  it('reports a constraint that does not parse instead of throwing', () => {
    const { unplaced } = schedule([node('a')], [], tasks(1, { constraints: ['zone=a'] }));
    expect(unplaced[0].reason).toMatch(/^invalid placement: "zone=a" is not key==value or key!=value/);
  });

  it('limits replicas per node, counting active tasks of the service', () => {
    const nodes = [node('a'), node('b')];
    const active = [task('old', { node: 'a', maxReplicas: 2 })];
    const { placements, unplaced } = schedule(nodes, active, tasks(4, { maxReplicas: 2 }));
    expect(countBy(placements)).toEqual({ a: 1, b: 2 });
    expect(unplaced).toEqual([{ taskId: 't-4', reason: 'no suitable node (max replicas per node reached on 2 nodes)' }]);
  });

  it('schedules each spec version of a service as its own group', () => {
    const nodes = [node('a', { labels: { v: '1' } }), node('b', { labels: { v: '2' } })];
    const pending = [
      ...tasks(2, { specVersion: 1, constraints: ['node.labels.v==1'] }, 'old'),
      ...tasks(2, { specVersion: 2, constraints: ['node.labels.v==2'] }, 'new'),
    ];
    const { placements } = schedule(nodes, [], pending);
    expect(placements).toEqual([
      { taskId: 'old-1', nodeId: 'a' },
      { taskId: 'old-2', nodeId: 'a' },
      { taskId: 'new-1', nodeId: 'b' },
      { taskId: 'new-2', nodeId: 'b' },
    ]);
  });

  it('places 5000 tasks on 1000 nodes', () => {
    const nodes = Array.from({ length: 1000 }, (_, i) => node(`n${String(i).padStart(4, '0')}`, { labels: { zone: `z${i % 3}` } }));
    const active = Array.from({ length: 2000 }, (_, i) => task(`a${i}`, { service: `s${i % 7}`, node: nodes[i % 1000].id, memory: 64 * 2 ** 20 }));
    const pending = Array.from({ length: 50 }, (_, s) =>
      tasks(100, { service: `s${s}`, memory: 128 * 2 ** 20, constraints: s % 5 === 0 ? ['node.labels.zone!=z0'] : [] }),
    ).flat();
    const { placements, unplaced } = schedule(nodes, active, pending);
    expect(unplaced).toEqual([]);
    expect(placements).toHaveLength(5000);
    expect(Math.max(...Object.values(countBy(placements)))).toBeLessThanOrEqual(6);
  });

  it('explains by filter, the one that excluded the most nodes first', () => {
    const nodes = [
      node('a', { labels: { zone: 'a' }, memory: GiB }),
      node('b', { labels: { zone: 'b' }, memory: GiB }),
      node('c', { memory: GiB }),
      node('c1', { labels: { zone: 'c' } }),
      node('c2', { labels: { zone: 'c' } }),
    ];
    const { unplaced } = schedule(nodes, [], tasks(1, { memory: 2 * GiB, constraints: ['node.labels.zone!=c'] }));
    expect(unplaced).toEqual([
      { taskId: 't-1', reason: 'no suitable node (insufficient memory on 3 nodes; constraint node.labels.zone!=c not satisfied on 2 nodes)' },
    ]);
  });

  it('explains a platform no node has and a cpu limit no node can give', () => {
    const nodes = [node('a', { arch: 'arm64' }), node('b', { cpus: 2e9 }), node('c', { cpus: 2e9 })];
    expect(schedule(nodes, [], tasks(1, { platforms: [{ os: 'linux', architecture: 'amd64' }], limitCpus: 4e9 })).unplaced[0].reason).toBe(
      'no suitable node (cpu limit exceeds the cpus of 2 nodes; unsupported platform on 1 node)',
    );
    expect(schedule(nodes, [], tasks(1, { platforms: [{ architecture: 'arm64' }] })).placements).toEqual([{ taskId: 't-1', nodeId: 'a' }]);
    expect(schedule(nodes, [], tasks(1, { limitCpus: 2e9 })).placements).toHaveLength(1);
  });

  it('reports a spread preference that does not parse', () => {
    const bad = task('t-1');
    bad.spec!.placement!.preferences = [{ spread: 'node.hostname' }];
    expect(schedule([node('a')], [], [bad]).unplaced).toEqual([
      { taskId: 't-1', reason: 'invalid placement: "node.hostname" does not name a node label: use node.labels.<name>' },
    ]);
  });

  it('places a task that fitted nowhere once a node that fits joins', () => {
    const pending = tasks(1, { memory: 4 * GiB });
    expect(schedule([node('a', { memory: 2 * GiB })], [], pending).unplaced[0].reason).toBe('no suitable node (insufficient memory on 1 node)');
    expect(schedule([node('a', { memory: 2 * GiB }), node('b')], [], pending).placements).toEqual([{ taskId: 't-1', nodeId: 'b' }]);
  });

  describe('a task that names its node (global mode)', () => {
    const pinned = (id: string, nodeId: string, o: Parameters<typeof task>[1] = {}) => task(id, { service: 'agent', node: nodeId, state: 'PENDING', ...o });

    it('goes to that node only, never to a better one', () => {
      const active = [task('busy1', { service: 'other', node: 'a' }), task('busy2', { service: 'other', node: 'a' })];
      const { placements } = schedule([node('a'), node('b')], active, [pinned('g-a', 'a'), pinned('g-b', 'b')]);
      expect(placements).toEqual([
        { taskId: 'g-a', nodeId: 'a' },
        { taskId: 'g-b', nodeId: 'b' },
      ]);
    });

    it('stays pending with the reason its node does not fit', () => {
      const nodes = [node('a', { memory: GiB }), node('b', { availability: 'pause' }), node('c', { state: 'NODE_DOWN' }), node('d', { labels: { zone: 'x' } })];
      const pending = ['a', 'b', 'c', 'd', 'gone'].map((n) => pinned(`g-${n}`, n, { memory: 2 * GiB, constraints: ['node.labels.zone!=x'] }));
      expect(schedule(nodes, [], pending).unplaced).toEqual([
        { taskId: 'g-a', reason: 'no suitable node (insufficient memory on 1 node)' },
        { taskId: 'g-b', reason: 'no suitable node (1 node paused or drained)' },
        { taskId: 'g-c', reason: 'no suitable node (1 node not ready)' },
        { taskId: 'g-d', reason: 'no suitable node (constraint node.labels.zone!=x not satisfied on 1 node)' },
        { taskId: 'g-gone', reason: 'no suitable node (node gone is not in the cluster)' },
      ]);
    });

    it('takes capacity before tasks that could go anywhere', () => {
      const early = { ...task('r-1', { service: 'web', memory: 2 * GiB }), created_at: '2023-01-01T00:00:00.000Z' };
      const { placements, unplaced } = schedule([node('a', { memory: 2 * GiB })], [], [early, pinned('g-a', 'a', { memory: 2 * GiB })]);
      expect(placements).toEqual([{ taskId: 'g-a', nodeId: 'a' }]);
      expect(unplaced).toEqual([{ taskId: 'r-1', reason: 'no suitable node (insufficient memory on 1 node)' }]);
    });
  });

  it('takes as pending the wanted tasks not yet assigned, and as active those holding a node', () => {
    const all = [
      task('unassigned'),
      task('pinned', { node: 'a', state: 'PENDING' }),
      task('assigned', { node: 'a', state: 'ASSIGNED' }),
      task('running', { node: 'a' }),
      task('stopping', { node: 'a', desired: 'SHUTDOWN' }),
      task('failed', { node: 'a', state: 'FAILED' }),
      task('cancelled', { desired: 'SHUTDOWN' }),
      task('delayed', { desired: 'READY' }),
    ];
    const { pending, active } = partitionTasks(all);
    expect(pending.map((t) => t.id)).toEqual(['unassigned', 'pinned', 'delayed']);
    expect(active.map((t) => t.id)).toEqual(['assigned', 'running', 'stopping']);
  });
});
