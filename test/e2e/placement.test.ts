import * as os from 'node:os';
import { describe, expect, it } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { runningOf, tasksOf, waitFor } from './observe';
import { useE2eNode } from './use-node';
import { IDLE } from '../helpers/workloads';

const node = useE2eNode();

/** The tasks of a service that want to run and have no node, once every replica has a task. */
const unplaced = (service: string, replicas: number) =>
  waitFor(`${service} to have ${replicas} tasks, the unplaced ones with a reason`, async () => {
    const live = (await tasksOf(node, service)).filter((t) => t.desired_state === 'RUNNING');
    const pending = live.filter((t) => !t.node_id);
    return live.length === replicas && pending.every((t) => t.schedule_error) && pending;
  });

const reasonIn = (tasks: Task__Output[]) => [...new Set(tasks.map((t) => t.schedule_error))];

describe('placement through the CLI', () => {
  it('an unplaceable task says why, in ps and in the failed create', () => {
    const r = node.shoal('service', 'create', '--name', 'huge', '--reserve-memory', '100000g', 'shoal-test:latest', ...IDLE);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^Error: service huge is not converging: task huge\.1 cannot be placed: no suitable node \(insufficient memory on 1 node\)$/m);
    expect(node.ok('service', 'ps', 'huge')).toMatch(/huge\.1\s+shoal-test:latest\s+Running\s+Pending .* "no suitable node \(insufficient memory on 1 node\)"/);
    expect(node.containerIds()).toEqual([]);
  });

  it('constraints: a matching one places the task, one no node meets is named as the reason', async () => {
    const hostname = os.hostname();
    node.ok('service', 'create', '--name', 'here', '--constraint', `node.hostname==${hostname}`, '--constraint', 'node.role==manager', 'shoal-test:latest', ...IDLE);
    expect(await runningOf(node, 'here')).toHaveLength(1);

    node.ok('service', 'create', '-d', '--name', 'nowhere', '--constraint', 'node.labels.zone==mars', 'shoal-test:latest', ...IDLE);
    const pending = await unplaced('nowhere', 1);
    expect(reasonIn(pending)).toEqual(['no suitable node (constraint node.labels.zone==mars not satisfied on 1 node)']);
  });

  it('--replicas-max-per-node places that many and says why the rest wait', async () => {
    node.ok('service', 'create', '-d', '--name', 'capped', '--replicas', '3', '--replicas-max-per-node', '2', 'shoal-test:latest', ...IDLE);
    await waitFor('2 replicas of capped to run', async () => (await runningOf(node, 'capped')).length === 2);
    const pending = await unplaced('capped', 3);
    expect(pending).toHaveLength(1);
    expect(reasonIn(pending)).toEqual(['no suitable node (max replicas per node reached on 1 node)']);
  });

  it('reservations count against the node: what does not fit waits, with the reason', async () => {
    // Two fit in the node's memory, a third does not.
    const memory = Math.floor((os.totalmem() * 0.4) / 2 ** 20);
    node.ok('service', 'create', '-d', '--name', 'reserved', '--replicas', '3', '--reserve-memory', `${memory}m`, 'shoal-test:latest', ...IDLE);
    await waitFor('2 replicas of reserved to run', async () => (await runningOf(node, 'reserved')).length === 2);
    const pending = await unplaced('reserved', 3);
    expect(pending).toHaveLength(1);
    expect(reasonIn(pending)).toEqual(['no suitable node (insufficient memory on 1 node)']);

    const cpus = os.cpus().length;
    node.ok('service', 'create', '-d', '--name', 'cpu', '--replicas', String(cpus + 1), '--reserve-cpu', '1', 'shoal-test:latest', ...IDLE);
    await waitFor(`${cpus} replicas of cpu to run`, async () => (await runningOf(node, 'cpu')).length === cpus);
    expect(reasonIn(await unplaced('cpu', cpus + 1))).toEqual(['no suitable node (insufficient cpu on 1 node)']);

    // Without the reservation all three fit: the update converges.
    node.ok('service', 'update', '--reserve-memory', '0', 'reserved');
    expect(await runningOf(node, 'reserved')).toHaveLength(3);
  });
});
