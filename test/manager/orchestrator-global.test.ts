import { describe, expect, it } from 'vitest';
import type { Placement } from '../../src/gen/shoal/v1/Placement';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import { reconcileGlobal } from '../../src/manager/orchestrator/global';
import { validateServiceSpec } from '../../src/manager/validate';
import { task } from '../fixtures';
import { node } from '../scheduler/fixtures';
import { ClusterSim } from './cluster-sim';

const NOW = Date.UTC(2026, 0, 2);

function globalService(placement: Placement = {}, condition = 'any'): Service__Output {
  const spec = validateServiceSpec({
    name: 'agent',
    mode: { global: {} },
    task_template: { container: { image: 'shoal-test:latest' }, restart_policy: { condition, delay_ms: 0 }, placement },
  });
  return { id: 'agent1', version: 1, spec, spec_version: 1, created_at: '2026-01-01T00:00:00.000Z', updated_at: '2026-01-01T00:00:00.000Z', errors: [], update_status: null, previous_spec: null, previous_spec_version: 0, virtual_ips: [] };
}

const on = (nodeId: string) => ({ node_id: nodeId, slot: 0 });
const nodesOf = (plan: { node_id: string }[]) => plan.map((t) => t.node_id).sort();

describe('global orchestrator', () => {
  it('creates one task per eligible node, naming the node, in slot 0', () => {
    const s = globalService({ constraints: ['node.labels.zone!=x'], platforms: [{ architecture: 'amd64' }] });
    const nodes = [
      node('a'),
      node('b'),
      node('down', { state: 'NODE_DOWN' }),
      node('drained', { availability: 'drain' }),
      node('paused', { availability: 'pause' }),
      node('excluded', { labels: { zone: 'x' } }),
      node('arm', { arch: 'arm64' }),
    ];
    const plan = reconcileGlobal(s, nodes, [], NOW);
    expect(nodesOf(plan.create)).toEqual(['a', 'b', 'down']);
    expect(plan.create.every((t) => t.slot === 0 && t.desired_state === 'RUNNING' && t.status!.state === 'PENDING')).toBe(true);
    expect(plan.update).toEqual([]);
  });

  it('does nothing when every eligible node runs its task', () => {
    const s = globalService();
    const tasks = [task(s, 0, 'RUNNING', on('a')), task(s, 0, 'RUNNING', on('b'))];
    expect(reconcileGlobal(s, [node('a'), node('b')], tasks, NOW)).toEqual({ create: [], update: [], remove: [] });
  });

  it('follows a node joining', () => {
    const s = globalService();
    const plan = reconcileGlobal(s, [node('a'), node('b')], [task(s, 0, 'RUNNING', on('a'))], NOW);
    expect(nodesOf(plan.create)).toEqual(['b']);
  });

  it('shuts down the task of a drained node and makes no new one', () => {
    const s = globalService();
    const running = task(s, 0, 'RUNNING', on('a'));
    const plan = reconcileGlobal(s, [node('a', { availability: 'drain' })], [running], NOW);
    expect(plan).toEqual({ create: [], update: [{ ...running, desired_state: 'SHUTDOWN' }], remove: [] });
  });

  it('deletes a task that never reached its node once the node is drained', () => {
    const s = globalService();
    const pending = task(s, 0, 'PENDING', on('a'));
    const plan = reconcileGlobal(s, [node('a', { availability: 'drain' })], [pending], NOW);
    expect(plan).toEqual({ create: [], update: [], remove: [pending] });
  });

  it('keeps the task of a paused node, but gives a paused node none', () => {
    const s = globalService();
    const running = task(s, 0, 'RUNNING', on('a'));
    const plan = reconcileGlobal(s, [node('a', { availability: 'pause' }), node('b', { availability: 'pause' })], [running], NOW);
    expect(plan).toEqual({ create: [], update: [], remove: [] });
  });

  it('keeps the task of a down node: the node is not gone', () => {
    const s = globalService();
    const running = task(s, 0, 'RUNNING', on('a'));
    expect(reconcileGlobal(s, [node('a', { state: 'NODE_DOWN' })], [running], NOW)).toEqual({ create: [], update: [], remove: [] });
  });

  it('deletes the tasks of a removed node', () => {
    const s = globalService();
    const gone = [task(s, 0, 'RUNNING', on('gone')), task(s, 0, 'FAILED', { ...on('gone'), desired_state: 'SHUTDOWN' })];
    const plan = reconcileGlobal(s, [node('a')], [task(s, 0, 'RUNNING', on('a')), ...gone], NOW);
    expect(plan).toEqual({ create: [], update: [], remove: gone });
  });

  it('follows a relabelled node out of and back into the constraints', () => {
    const s = globalService({ constraints: ['node.labels.role==edge'] });
    const running = task(s, 0, 'RUNNING', on('a'));
    const out = reconcileGlobal(s, [node('a', { labels: { role: 'core' } })], [running], NOW);
    expect(out).toEqual({ create: [], update: [{ ...running, desired_state: 'SHUTDOWN' }], remove: [] });
    const stopped = { ...running, desired_state: 'SHUTDOWN' as const, status: { ...running.status!, state: 'SHUTDOWN' as const } };
    const back = reconcileGlobal(s, [node('a', { labels: { role: 'edge' } })], [stopped], NOW);
    expect(back.create.map((t) => [t.node_id, t.slot])).toEqual([['a', 0]]);
    expect(back.update).toEqual([]);
  });

  it('restarts a failed task on its node per the restart policy', () => {
    const s = globalService();
    const failed = task(s, 0, 'FAILED', on('a'));
    const plan = reconcileGlobal(s, [node('a')], [failed], NOW);
    expect(plan.update).toEqual([{ ...failed, desired_state: 'SHUTDOWN' }]);
    expect(plan.create.map((t) => [t.node_id, t.slot, t.restart_times])).toEqual([['a', 0, [new Date(NOW).toISOString()]]]);
    const none = globalService({}, 'none');
    expect(reconcileGlobal(none, [node('a')], [task(none, 0, 'FAILED', on('a'))], NOW).create).toEqual([]);
  });

  it('replaces tasks of an older spec version on the same node', () => {
    const s = { ...globalService(), spec_version: 2 };
    const old = task(s, 0, 'RUNNING', { ...on('a'), spec_version: 1 });
    const plan = reconcileGlobal(s, [node('a')], [old], NOW);
    expect(plan.update).toEqual([{ ...old, desired_state: 'SHUTDOWN' }]);
    expect(plan.create.map((t) => [t.node_id, t.spec_version])).toEqual([['a', 2]]);
  });

  it('keeps each node’s history bounded on its own', () => {
    const s = globalService();
    const history = (n: string) => Array.from({ length: 5 }, () => task(s, 0, 'FAILED', { ...on(n), desired_state: 'SHUTDOWN' }));
    const [a, b] = [history('a'), history('b')];
    const plan = reconcileGlobal(s, [node('a'), node('b')], [...a, task(s, 0, 'RUNNING', on('a')), ...b, task(s, 0, 'RUNNING', on('b'))], NOW);
    expect(plan.remove.map((t) => t.id).sort()).toEqual([a[0].id, b[0].id].sort());
  });

  it('gives every node a task when a stored constraint does not parse, so the scheduler can say why', () => {
    const s = globalService();
    s.spec!.task_template!.placement!.constraints = ['zone=a'];
    expect(nodesOf(reconcileGlobal(s, [node('a'), node('b')], [], NOW).create)).toEqual(['a', 'b']);
  });

  it('with the scheduler, follows nodes joining, draining, relabelling and leaving', () => {
    const sim = new ClusterSim([node('a', { labels: { edge: 'yes' } }), node('b', { labels: { edge: 'yes' } })], globalService({ constraints: ['node.labels.edge==yes'] }));
    sim.settle();
    expect(sim.perNode(sim.running())).toEqual({ a: 1, b: 1 });

    sim.nodes.push(node('c', { labels: { edge: 'yes' } }), node('d'));
    sim.settle();
    expect(sim.perNode(sim.running())).toEqual({ a: 1, b: 1, c: 1 });

    sim.setNode('a', (n) => ({ ...n, spec: { ...n.spec!, availability: 'drain' } }));
    sim.setNode('d', (n) => ({ ...n, spec: { ...n.spec!, labels: { edge: 'yes' } } }));
    sim.setNode('b', (n) => ({ ...n, spec: { ...n.spec!, labels: {} } }));
    sim.settle();
    expect(sim.perNode(sim.running())).toEqual({ c: 1, d: 1 });

    sim.nodes = sim.nodes.filter((n) => n.id !== 'c');
    sim.settle();
    expect(sim.perNode(sim.live())).toEqual({ d: 1 });
    expect([...sim.tasks.values()].some((t) => t.node_id === 'c')).toBe(false);
  });

  it('with the scheduler, leaves a task pending with the reason while its node lacks memory', () => {
    const s = globalService();
    s.spec!.task_template!.resources!.reservations!.memory_bytes = 4 * 2 ** 30;
    const sim = new ClusterSim([node('a'), node('small', { memory: 2 ** 30 })], s);
    sim.settle();
    const small = [...sim.tasks.values()].find((t) => t.node_id === 'small')!;
    expect(small.status!.state).toBe('PENDING');
    expect(small.schedule_error).toBe('no suitable node (insufficient memory on 1 node)');
    sim.setNode('small', (n) => ({ ...n, description: { ...n.description!, resources: { ...n.description!.resources!, memory_bytes: 8 * 2 ** 30 } } }));
    sim.settle();
    expect(sim.perNode(sim.running())).toEqual({ a: 1, small: 1 });
  });
});
