import { describe, expect, it } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import type { Op } from '../../src/manager/store/store';
import { hostPortFilter, pipelineFor } from '../../src/scheduler/filters';
import { hostPortsOf } from '../../src/scheduler/host-ports';
import { NodeInfo } from '../../src/scheduler/node-info';
import { schedule } from '../../src/scheduler/schedule';
import { planPlacements } from '../../src/manager/scheduling';
import { node, task, tasks, type TaskOpts } from './fixtures';

const port = (published_port: number, publish_mode = 'host', protocol = 'tcp') => ({ protocol, target_port: 80, published_port, publish_mode });
const HOST_9090 = [port(9090)];

/** A task made with an endpoint spec publishing `ports`. */
const publishing = (t: Task__Output, ports = HOST_9090): Task__Output => ({ ...t, endpoint: { mode: 'vip', ports } });
const publishingTask = (id: string, o: TaskOpts = {}, ports = HOST_9090) => publishing(task(id, o), ports);
const publishingTasks = (n: number, o: TaskOpts = {}, ports = HOST_9090) => tasks(n, o).map((t) => publishing(t, ports));

/** The task a scheduling write places (or not): its id, node and schedule error. */
const placed = (op: Op) => {
  const t = (op.type === 'delete' ? {} : op.obj) as Partial<Task__Output>;
  return [t.id, t.node_id, t.schedule_error];
};

describe('host ports', () => {
  it('are the host-mode ports of a task’s endpoint spec, as port/protocol; ingress ports are not a node’s', () => {
    expect(hostPortsOf({ mode: 'vip', ports: [port(9090), port(8080, 'ingress'), port(53, 'host', 'udp')] })).toEqual(['9090/tcp', '53/udp']);
    expect(hostPortsOf(null)).toEqual([]);
  });

  it('are counted on a node by every task that holds them, one on its way out too, until it is gone', () => {
    const info = new NodeInfo(node('a'));
    const filter = hostPortFilter('9090/tcp');
    const t = publishingTask('t', { service: 'web' });
    expect(filter.check(t, info)).toBe(true);
    info.addTask(publishingTask('old', { service: 'web', node: 'a', desired: 'SHUTDOWN' }));
    expect(filter.check(t, info)).toBe(false);
    expect(hostPortFilter('9090/udp').check(t, info)).toBe(true);
    // A task made without the port (of another spec, or service) holds nothing.
    const other = new NodeInfo(node('b'));
    other.addTask(task('x', { service: 'web', node: 'b' }));
    other.addTask(publishingTask('y', { service: 'mesh', node: 'b' }, [port(9090, 'ingress')]));
    expect(filter.check(t, other)).toBe(true);
  });

  it('explain which port is taken on how many nodes, one filter per port', () => {
    expect(hostPortFilter('9090/tcp').explain(1)).toBe('host port 9090/tcp in use on 1 node');
    expect(hostPortFilter('53/udp').explain(2)).toBe('host port 53/udp in use on 2 nodes');
    const both = publishingTask('t', {}, [port(9090), port(53, 'host', 'udp')]);
    expect(pipelineFor(both).map((f) => f.name).slice(-2)).toEqual(['host port 9090/tcp', 'host port 53/udp']);
    expect(pipelineFor(task('t')).some((f) => f.name.startsWith('host port'))).toBe(false);
  });

  it('keep a second task off a node that already publishes the port, and leave it pending when no node is left', () => {
    const one = schedule([node('a')], [], publishingTasks(2, { service: 'web' }));
    expect(one.placements).toEqual([{ taskId: 'web-1', nodeId: 'a' }]);
    expect(one.unplaced).toEqual([{ taskId: 'web-2', reason: 'no suitable node (host port 9090/tcp in use on 1 node)' }]);

    const two = schedule([node('a'), node('b')], [], publishingTasks(3, { service: 'web' }));
    expect(two.placements.map((p) => p.nodeId).sort()).toEqual(['a', 'b']);
    expect(two.unplaced).toEqual([{ taskId: 'web-3', reason: 'no suitable node (host port 9090/tcp in use on 2 nodes)' }]);
  });

  it('are held by any service’s running task, and do not stop tasks without the port', () => {
    const active = [publishingTask('api-1', { service: 'api', node: 'a' })];
    expect(schedule([node('a'), node('b')], active, publishingTasks(1, { service: 'web' })).placements).toEqual([{ taskId: 'web-1', nodeId: 'b' }]);
    expect(schedule([node('a')], active, tasks(2, { service: 'plain' })).placements).toHaveLength(2);
  });

  it('refuse a global task on its node when the port is taken there', () => {
    const active = [publishingTask('api-1', { service: 'api', node: 'a' })];
    const pinned = { ...publishingTask('web-a', { service: 'web' }), node_id: 'a' };
    expect(schedule([node('a')], active, [pinned]).unplaced).toEqual([{ taskId: 'web-a', reason: 'no suitable node (host port 9090/tcp in use on 1 node)' }]);
  });

  it('reach the scheduler pass with the tasks, and its writes record the placement and the reason', () => {
    const { plans } = planPlacements([node('a')], publishingTasks(2, { service: 'web' }));
    expect(plans.get('web')!.map((op) => [op.type, ...placed(op)])).toEqual([
      ['update', 'web-1', 'a', ''],
      ['update', 'web-2', '', 'no suitable node (host port 9090/tcp in use on 1 node)'],
    ]);
  });
});
