import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { quietLogger } from '../../src/common/logger';
import { withConvergenceError } from '../../src/manager/convergence-errors';
import { orchestrate, planServices } from '../../src/manager/orchestrator/pass';
import { planPlacements, schedulePending } from '../../src/manager/scheduling';
import { StoreCache } from '../../src/manager/store/cache';
import { Store, type Op } from '../../src/manager/store/store';
import { MAX_REPLICAS } from '../../src/manager/validate';
import { service, task } from '../fixtures';
import { node, task as pendingTask } from '../scheduler/fixtures';
import { startEtcd, type TestEtcd } from '../helpers/etcd';

const NOW = Date.UTC(2026, 0, 2);
/** The task a scheduling op writes. */
const written = (op: Op): Task__Output => {
  if (op.type === 'delete') throw new Error(`expected a write, got a delete of ${op.id}`);
  return op.obj as Task__Output;
};
const withReplicas = (s: Service__Output, replicas: number): Service__Output => ({ ...s, spec: { ...s.spec!, mode: { mode: 'replicated', replicated: { replicas } } } });
const named = (id: string, name: string, replicas: number): Service__Output => {
  const s = service(replicas);
  return { ...s, id, spec: { ...s.spec!, name } };
};

describe('one service cannot stall the orchestrator for the others', () => {
  it('plans every other service when one service’s plan throws', () => {
    const broken = named('broken', 'broken', 1);
    const web = named('web', 'web', 2);
    // A task without a status (written around the API) makes the planner throw for its service.
    const bad = { ...task(broken, 1, 'RUNNING'), status: null } as Task__Output;
    const { plans, failures } = planServices([broken, web], [bad], [], NOW);
    expect(failures.get('broken')).toMatch(/^planning its tasks failed: /);
    expect(plans.get('web')!.create.map((t) => t.slot).sort()).toEqual([1, 2]);
  });

  it('shares the budget of new slots among the services, in order', () => {
    const { plans } = planServices([named('a', 'a', 3), named('b', 'b', 3), named('c', 'c', 3)], [], [], NOW, 4);
    expect(['a', 'b', 'c'].map((id) => [plans.get(id)!.create.length, plans.get(id)!.wakeAt])).toEqual([
      [3, undefined],
      [1, NOW],
      [0, NOW],
    ]);
  });

  it('refuses to plan a stored service past the replica bound, without building its slots', () => {
    const stored = named('bomb', 'bomb', 1);
    const bomb = { ...stored, spec: { ...stored.spec!, mode: { mode: 'replicated' as const, replicated: { replicas: 1e9 } } } };
    const web = named('web', 'web', 1);
    const { plans, failures } = planServices([bomb, web], [], [], NOW);
    expect(failures.get('bomb')).toBe(`its 1000000000 replicas are more than the ${MAX_REPLICAS} a service may have; scale it down`);
    expect(plans.has('bomb')).toBe(false);
    expect(plans.get('web')!.create).toHaveLength(1);
  });
});

describe('one service cannot stall the scheduler for the others', () => {
  it('places every other service when scheduling one service throws', () => {
    // A node label stored as a number makes the constraint check throw, for constrained services only.
    const n = node('n1');
    n.spec!.labels = { zone: 1 as unknown as string };
    const constrained = pendingTask('c-1', { service: 'constrained', constraints: ['node.labels.zone==a'] });
    const plain = [pendingTask('p-1', { service: 'plain', slot: 1 }), pendingTask('p-2', { service: 'plain', slot: 2 })];
    const { plans, failures } = planPlacements([n], [constrained, ...plain]);
    expect(failures.get('constrained')).toMatch(/^scheduling its tasks failed: /);
    expect(plans.get('plain')!.map((op) => written(op).node_id)).toEqual(['n1', 'n1']);
  });

  it('places at most the limit per pass, the first pending tasks, and counts the others as deferred', () => {
    const pending = [1, 2, 3].map((i) => pendingTask(`p-${i}`, { service: 'plain', slot: i }));
    const { plans, deferred } = planPlacements([node('n1')], pending, 2);
    expect(plans.get('plain')!.map((op) => written(op).id)).toEqual(['p-1', 'p-2']);
    expect(deferred).toBe(1);
  });

  it('schedules each service against the placements made before it', () => {
    const n = node('n1', { memory: 100 });
    const first = pendingTask('a-1', { service: 'a', memory: 80 });
    const second = { ...pendingTask('b-1', { service: 'b', memory: 80 }), created_at: '2024-01-02T00:00:00.000Z' };
    const { plans } = planPlacements([n], [second, first]);
    const tasksOf = (serviceId: string) => plans.get(serviceId)!.map(written);
    expect(tasksOf('a').map((t) => t.node_id)).toEqual(['n1']);
    expect(tasksOf('b').map((t) => [t.node_id, t.schedule_error])).toEqual([['', 'no suitable node (insufficient memory on 1 node)']]);
  });
});

describe('convergence errors on the service', () => {
  const s = named('s', 's', 1);

  it('sets, keeps the first time of, and clears one loop’s error', () => {
    const set = withConvergenceError(s, 'orchestrator', 'boom', 't1')!;
    expect(set.errors).toEqual([{ loop: 'orchestrator', message: 'boom', since: 't1' }]);
    expect(withConvergenceError(set, 'orchestrator', 'boom', 't2')).toBeNull();
    const both = withConvergenceError(set, 'scheduler', 'bang', 't3')!;
    expect(both.errors.map((e) => e.loop)).toEqual(['orchestrator', 'scheduler']);
    expect(withConvergenceError(both, 'orchestrator', undefined, 't4')!.errors).toEqual([{ loop: 'scheduler', message: 'bang', since: 't3' }]);
    expect(withConvergenceError(s, 'orchestrator', undefined, 't5')).toBeNull();
  });
});

describe('leader passes with a write that etcd refuses (real etcd)', () => {
  let etcd: TestEtcd;
  let store: Store;
  // The loops read the cache; writes made here go through it too, so each pass sees them.
  let cache: StoreCache;
  const log = quietLogger();

  beforeAll(async () => {
    // A 100 KB request limit stands in for etcd's 1.5 MiB, so small objects reach it.
    etcd = await startEtcd(['--max-request-bytes=100000']);
    store = new Store(etcd.client);
    cache = new StoreCache(store, log);
    await cache.start();
  });

  afterAll(async () => {
    await cache?.stop();
    await etcd?.stop();
  });

  it('converges the other services and records the refused one’s error for service ps', async () => {
    const big = named('big', 'big', 3);
    big.spec!.task_template!.container!.env = [`K=${'x'.repeat(60_000)}`];
    const web = named('web', 'web', 2);
    await cache.commit([big, web].map((obj) => ({ type: 'create' as const, kind: 'services' as const, obj })));

    const wakeAt = await orchestrate(cache, log);
    expect(wakeAt).toBeDefined();
    const tasks = await store.list<Task__Output>('tasks');
    expect(tasks.filter((t) => t.service_id === 'web')).toHaveLength(2);
    expect(tasks.filter((t) => t.service_id === 'big')).toHaveLength(0);
    const stored = (await store.get<Service__Output>('services', 'big'))!;
    expect(stored.errors).toHaveLength(1);
    expect(stored.errors[0]).toMatchObject({ loop: 'orchestrator' });
    expect(stored.errors[0].message).toMatch(/^writing its tasks failed: the write is too large for the cluster store/);

    // Once the service is small enough, the next pass writes its tasks and clears the error.
    await cache.commit([{ type: 'update', kind: 'services', obj: withReplicas(stored, 1) }]);
    await orchestrate(cache, log);
    expect((await store.list<Task__Output>('tasks')).filter((t) => t.service_id === 'big')).toHaveLength(1);
    expect((await store.get<Service__Output>('services', 'big'))!.errors).toEqual([]);
  });

  it('places the other services’ tasks when one service’s placements are refused', async () => {
    // Scaled one at a time, so each 60 KB task is created alone; their assignments, together
    // over 100 KB, are one transaction that etcd refuses.
    for (const replicas of [2, 3]) {
      const big = (await store.get<Service__Output>('services', 'big'))!;
      await cache.commit([{ type: 'update', kind: 'services', obj: withReplicas(big, replicas) }]);
      await orchestrate(cache, log);
    }
    await cache.commit([{ type: 'create', kind: 'nodes', obj: node('n1') }]);

    expect(await schedulePending(cache, log)).toBeDefined();
    const tasks = await store.list<Task__Output>('tasks');
    expect(tasks.filter((t) => t.service_id === 'web').map((t) => t.node_id)).toEqual(['n1', 'n1']);
    expect(tasks.filter((t) => t.service_id === 'big' && t.node_id)).toHaveLength(0);
    const errors = (await store.get<Service__Output>('services', 'big'))!.errors;
    expect(errors.map((e) => e.loop)).toEqual(['scheduler']);
    expect(errors[0].message).toMatch(/^writing its placements failed: the write is too large/);
  });
});
