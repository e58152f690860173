import { describe, expect, it } from 'vitest';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import type { Op } from '../../src/manager/store/store';
import { hostPortFilter, pipelineFor } from '../../src/scheduler/filters';
import { hostPortsByService, hostPortsOf } from '../../src/scheduler/host-ports';
import { NodeInfo } from '../../src/scheduler/node-info';
import { schedule } from '../../src/scheduler/schedule';
import { planPlacements } from '../../src/manager/scheduling';
import { service } from '../fixtures';
import { node, task, tasks } from './fixtures';

/** The task a scheduling write places (or not): its id, node and schedule error. */
const placed = (op: Op) => {
  const t = (op.type === 'delete' ? {} : op.obj) as Partial<Task__Output>;
  return [t.id, t.node_id, t.schedule_error];
};

const port = (published_port: number, publish_mode = 'host', protocol = 'tcp') => ({ protocol, target_port: 80, published_port, publish_mode });

/** Service `id` publishing `ports`. */
function publishing(id: string, ...ports: ReturnType<typeof port>[]): Service__Output {
  const s = service(1);
  return { ...s, id, spec: { ...s.spec!, name: id, endpoint_spec: { mode: 'vip', ports } } };
}

describe('host ports', () => {
  it('are the host-mode ports of an endpoint spec, as port/protocol; ingress ports are not a node’s', () => {
    expect(hostPortsOf({ mode: 'vip', ports: [port(9090), port(8080, 'ingress'), port(53, 'host', 'udp')] })).toEqual(['9090/tcp', '53/udp']);
    expect(hostPortsOf(null)).toEqual([]);
    const byService = hostPortsByService([publishing('web', port(9090)), publishing('mesh', port(8080, 'ingress')), service(1)]);
    expect([...byService]).toEqual([['web', ['9090/tcp']]]);
  });

  it('are counted on a node by every task that holds them, one on its way out too, until it is gone', () => {
    const ports = new Map([['web', ['9090/tcp']]]);
    const info = new NodeInfo(node('a'), ports);
    const filter = hostPortFilter('9090/tcp');
    const t = task('t', { service: 'web' });
    expect(filter.check(t, info)).toBe(true);
    info.addTask(task('old', { service: 'web', node: 'a', desired: 'SHUTDOWN' }));
    expect(filter.check(t, info)).toBe(false);
    expect(hostPortFilter('9090/udp').check(t, info)).toBe(true);
    // Another service's tasks hold only their own ports.
    const other = new NodeInfo(node('b'), ports);
    other.addTask(task('x', { service: 'other', node: 'b' }));
    expect(filter.check(t, other)).toBe(true);
  });

  it('explain which port is taken on how many nodes', () => {
    expect(hostPortFilter('9090/tcp').explain(1)).toBe('host port 9090/tcp in use on 1 node');
    expect(hostPortFilter('53/udp').explain(2)).toBe('host port 53/udp in use on 2 nodes');
    expect(pipelineFor(task('t'), ['9090/tcp', '53/udp']).map((f) => f.name).slice(-2)).toEqual(['host port 9090/tcp', 'host port 53/udp']);
    expect(pipelineFor(task('t')).some((f) => f.name.startsWith('host port'))).toBe(false);
  });

  it('keep a second task off a node that already publishes the port, and leave it pending when no node is left', () => {
    const ports = new Map([['web', ['9090/tcp']]]);
    const one = schedule([node('a')], [], tasks(2, { service: 'web' }), ports);
    expect(one.placements).toEqual([{ taskId: 'web-1', nodeId: 'a' }]);
    expect(one.unplaced).toEqual([{ taskId: 'web-2', reason: 'no suitable node (host port 9090/tcp in use on 1 node)' }]);

    const two = schedule([node('a'), node('b')], [], tasks(3, { service: 'web' }), ports);
    expect(two.placements.map((p) => p.nodeId).sort()).toEqual(['a', 'b']);
    expect(two.unplaced).toEqual([{ taskId: 'web-3', reason: 'no suitable node (host port 9090/tcp in use on 2 nodes)' }]);
  });

  it('are held by any service’s running task, and do not stop tasks without the port', () => {
    const ports = new Map([
      ['web', ['9090/tcp']],
      ['api', ['9090/tcp']],
    ]);
    const active = [task('api-1', { service: 'api', node: 'a' })];
    expect(schedule([node('a'), node('b')], active, tasks(1, { service: 'web' }), ports).placements).toEqual([{ taskId: 'web-1', nodeId: 'b' }]);
    const plain = schedule([node('a')], active, tasks(2, { service: 'plain' }), ports);
    expect(plain.placements).toHaveLength(2);
  });

  it('refuse a global task on its node when the port is taken there', () => {
    const ports = new Map([['web', ['9090/tcp']]]);
    const active = [task('api-1', { service: 'api', node: 'a' })];
    const pinned = { ...task('web-a', { service: 'web' }), node_id: 'a' };
    const result = schedule([node('a')], active, [pinned], new Map([...ports, ['api', ['9090/tcp']]]));
    expect(result.unplaced).toEqual([{ taskId: 'web-a', reason: 'no suitable node (host port 9090/tcp in use on 1 node)' }]);
  });

  it('reach the scheduler from the services’ current specs', () => {
    const web = publishing('web', port(9090));
    const pending = tasks(2, { service: 'web' });
    const { plans } = planPlacements([node('a')], pending, [web]);
    expect(plans.get('web')!.map((op) => [op.type, ...placed(op)])).toEqual([
      ['update', 'web-1', 'a', ''],
      ['update', 'web-2', '', 'no suitable node (host port 9090/tcp in use on 1 node)'],
    ]);
    // Without its service's ports, nothing keeps them apart.
    expect(planPlacements([node('a')], pending, []).plans.get('web')!.map((op) => placed(op)[1])).toEqual(['a', 'a']);
  });
});
