import { describe, expect, it } from 'vitest';
import { wantsRunning } from '../../src/common/tasks';
import { reconcileOrphanedTasks, reconcileReplicatedOnNodes, TASK_HISTORY_LIMIT } from '../../src/manager/orchestrator/replicated';
import { validateServiceSpec } from '../../src/manager/validate';
import { service, task } from '../fixtures';
import { node } from '../scheduler/fixtures';
import { ClusterSim } from './cluster-sim';

const NOW = Date.UTC(2026, 0, 2);
const STAMP = new Date(NOW).toISOString();

describe('replicated orchestrator and node failure', () => {
  it('orphans the task of a down node and makes a new one for its slot', () => {
    const s = service(2);
    const lost = task(s, 1, 'RUNNING', { node_id: 'a' });
    const kept = task(s, 2, 'RUNNING', { node_id: 'b' });
    const plan = reconcileReplicatedOnNodes(s, [lost, kept], [node('a', { state: 'NODE_DOWN' }), node('b')], NOW);
    expect(plan.update).toEqual([
      { ...lost, desired_state: 'SHUTDOWN', status: { ...lost.status!, state: 'ORPHANED', timestamp: STAMP, message: 'task orphaned: its node is down', err: '' } },
    ]);
    expect(plan.create.map((t) => [t.slot, t.node_id, t.desired_state])).toEqual([[1, '', 'RUNNING']]);
    expect(plan.remove).toEqual([]);
  });

  it('orphans the tasks of a removed node (node rm) the same way', () => {
    const s = service(1);
    const lost = task(s, 1, 'STARTING', { node_id: 'gone' });
    const plan = reconcileReplicatedOnNodes(s, [lost], [node('a')], NOW);
    expect(plan.update.map((t) => [t.id, t.desired_state, t.status!.state, t.status!.message])).toEqual([
      [lost.id, 'SHUTDOWN', 'ORPHANED', 'task orphaned: its node was removed'],
    ]);
    expect(plan.create).toHaveLength(1);
  });

  it('leaves ended tasks and unassigned ones alone', () => {
    const s = service(2);
    const ended = task(s, 1, 'FAILED', { node_id: 'a', desired_state: 'SHUTDOWN' });
    const running = task(s, 1, 'RUNNING', { node_id: 'b' });
    const pending = task(s, 2, 'PENDING', { node_id: '' });
    expect(reconcileReplicatedOnNodes(s, [ended, running, pending], [node('a', { state: 'NODE_DOWN' }), node('b')], NOW)).toEqual({
      create: [],
      update: [],
      remove: [],
    });
  });

  it('does nothing more when the down node comes back: its stale task stays shut down', () => {
    const s = service(1);
    const stale = task(s, 1, 'ORPHANED', { node_id: 'a', desired_state: 'SHUTDOWN' });
    const replacement = task(s, 1, 'RUNNING', { node_id: 'b' });
    expect(reconcileReplicatedOnNodes(s, [stale, replacement], [node('a'), node('b')], NOW)).toEqual({ create: [], update: [], remove: [] });
  });

  it('shuts down the tasks of a drained node, leaving their status to the agent, and replaces them', () => {
    const s = service(1);
    const t = task(s, 1, 'RUNNING', { node_id: 'a' });
    const plan = reconcileReplicatedOnNodes(s, [t], [node('a', { availability: 'drain' }), node('b')], NOW);
    expect(plan.update).toEqual([{ ...t, desired_state: 'SHUTDOWN' }]);
    expect(plan.create.map((c) => c.slot)).toEqual([1]);
  });

  it('leaves the tasks of a paused node running', () => {
    const s = service(1);
    const t = task(s, 1, 'RUNNING', { node_id: 'a' });
    expect(reconcileReplicatedOnNodes(s, [t], [node('a', { availability: 'pause' })], NOW)).toEqual({ create: [], update: [], remove: [] });
  });

  it('deletes an orphaned task the slot history drops, instead of also changing it', () => {
    const s = service(1);
    const history = Array.from({ length: TASK_HISTORY_LIMIT }, () => task(s, 1, 'FAILED', { node_id: 'b', desired_state: 'SHUTDOWN' }));
    const lost = task(s, 1, 'RUNNING', { node_id: 'a', created_at: '2025-01-01T00:00:00.000Z' });
    const plan = reconcileReplicatedOnNodes(s, [lost, ...history], [node('a', { state: 'NODE_DOWN' }), node('b')], NOW);
    expect(plan.remove.map((t) => t.id)).toContain(lost.id);
    expect(plan.update.map((t) => t.id)).not.toContain(lost.id);
    expect(plan.create).toHaveLength(1);
  });

  it('with the scheduler: a node down moves its tasks, and its return leaves no surplus', () => {
    const sim = new ClusterSim(['n1', 'n2', 'n3', 'n4', 'n5'].map((id) => node(id)), service(10));
    sim.settle();
    expect(sim.perNode(sim.running())).toEqual({ n1: 2, n2: 2, n3: 2, n4: 2, n5: 2 });

    sim.setNode('n3', (n) => ({ ...n, status: { ...n.status!, state: 'NODE_DOWN' } }));
    sim.settle();
    expect(sim.live()).toHaveLength(10);
    expect(sim.live().some((t) => t.node_id === 'n3')).toBe(false);
    expect(Object.values(sim.perNode(sim.live())).sort()).toEqual([2, 2, 3, 3]);

    sim.setNode('n3', (n) => ({ ...n, status: { ...n.status!, state: 'NODE_READY' } }));
    sim.settle();
    expect(sim.live()).toHaveLength(10);
    expect(new Set(sim.live().map((t) => t.slot)).size).toBe(10);
    const stale = [...sim.tasks.values()].filter((t) => t.node_id === 'n3');
    expect(stale.every((t) => !wantsRunning(t.desired_state) && t.status!.state === 'ORPHANED')).toBe(true);
  });

  it('with the scheduler: drain moves every task off the node, pause keeps them', () => {
    const sim = new ClusterSim(['n1', 'n2', 'n3'].map((id) => node(id)), service(6));
    sim.settle();
    sim.setNode('n1', (n) => ({ ...n, spec: { ...n.spec!, availability: 'pause' } }));
    sim.settle();
    expect(sim.perNode(sim.running())).toEqual({ n1: 2, n2: 2, n3: 2 });
    sim.setNode('n2', (n) => ({ ...n, spec: { ...n.spec!, availability: 'drain' } }));
    sim.settle();
    expect(sim.perNode(sim.running())).toEqual({ n1: 2, n3: 4 });
    expect([...sim.tasks.values()].filter((t) => t.node_id === 'n2').every((t) => t.status!.state === 'SHUTDOWN')).toBe(true);
  });

  it('with the scheduler: spread preferences survive a zone losing a node', () => {
    const spec = validateServiceSpec({
      name: 'web',
      mode: { replicated: { replicas: 6 } },
      task_template: { container: { image: 'x' }, restart_policy: { delay_ms: 0 }, placement: { preferences: [{ spread: 'node.labels.zone' }] } },
    });
    const s = { ...service(6), spec };
    const zone = (z: string) => ({ labels: { zone: z } });
    const sim = new ClusterSim([node('a1', zone('a')), node('a2', zone('a')), node('b1', zone('b')), node('c1', zone('c'))], s);
    sim.settle();
    expect(sim.perNode(sim.running())).toEqual({ a1: 1, a2: 1, b1: 2, c1: 2 });
    sim.setNode('a1', (n) => ({ ...n, status: { ...n.status!, state: 'NODE_DOWN' } }));
    sim.settle();
    expect(sim.perNode(sim.live())).toEqual({ a2: 2, b1: 2, c1: 2 });
  });
});

describe('stopping a task that never reached a node', () => {
  it('deletes it instead of waiting for a report that will never come', () => {
    const s = { ...service(1), spec_version: 2 };
    const unplaced = task(s, 1, 'PENDING', { node_id: '', spec_version: 1 });
    const surplus = task(s, 2, 'PENDING', { node_id: '' });
    const plan = reconcileReplicatedOnNodes(s, [unplaced, surplus], [node('a')], NOW);
    expect(plan.remove.map((t) => t.id)).toEqual([unplaced.id, surplus.id]);
    expect(plan.update).toEqual([]);
    expect(plan.create.map((t) => [t.slot, t.spec_version])).toEqual([[1, 2]]);
  });

  it('deletes the pending tasks of a removed service, even when they name their node', () => {
    const s = service(1);
    const pinned = task(s, 0, 'PENDING', { node_id: 'a' });
    expect(reconcileOrphanedTasks([pinned]).remove).toEqual([pinned]);
  });
});
