import { describe, expect, it } from 'vitest';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import type { UpdateConfig } from '../../src/gen/shoal/v1/UpdateConfig';
import type { UpdateStatus__Output } from '../../src/gen/shoal/v1/UpdateStatus';
import type { Node__Output } from '../../src/gen/shoal/v1/Node';
import { reconcileReplicated } from '../../src/manager/orchestrator/replicated';
import { reconcileGlobal } from '../../src/manager/orchestrator/global';
import { decideUpdate } from '../../src/manager/orchestrator/update';
import { validateServiceSpec } from '../../src/manager/validate';
import { task } from '../fixtures';

const NOW = Date.UTC(2026, 0, 2);
const iso = (ms: number) => new Date(ms).toISOString();
const START = NOW - 60_000;

/** Version 1 of a service, as created: image v1. */
function original(replicas: number, update: UpdateConfig = {}, rollback: UpdateConfig = {}): Service__Output {
  const spec = validateServiceSpec({
    name: 'web',
    mode: { replicated: { replicas } },
    task_template: { container: { image: 'shoal-test:v1' }, restart_policy: { condition: 'any', delay_ms: 0 } },
    update_config: update,
    rollback_config: rollback,
  });
  const at = iso(NOW - 3_600_000);
  return { id: 'svc1', version: 1, spec, spec_version: 1, created_at: at, updated_at: at, errors: [], update_status: null, previous_spec: null, previous_spec_version: 0, virtual_ips: [] };
}

/** The same service updated to image v2 (spec version 2), keeping version 1 as its previous spec. */
function updated(replicas: number, update: UpdateConfig = {}, status: Partial<UpdateStatus__Output> | null = null, rollback: UpdateConfig = {}): Service__Output {
  const v1 = original(replicas, update, rollback);
  const spec = structuredClone(v1.spec!);
  spec.task_template!.container!.image = 'shoal-test:v2';
  const update_status = status && { state: 'updating', started_at: iso(START), completed_at: '', message: 'update in progress', ...status };
  return { ...v1, spec, spec_version: 2, previous_spec: v1.spec, previous_spec_version: 1, update_status };
}

/** A task running since `sinceMs` (its status time), made at `createdMs`. */
function running(s: Service__Output, slot: number, version: number, sinceMs: number, createdMs = sinceMs - 1000): Task__Output {
  return task(s, slot, 'RUNNING', { spec_version: version, created_at: iso(createdMs), status: { state: 'RUNNING', timestamp: iso(sinceMs), message: '', err: '', container: null, health: '' } });
}

const oldTasks = (s: Service__Output, n: number) => Array.from({ length: n }, (_, i) => running(s, i + 1, 1, START - 600_000));
const slotsOf = (tasks: Task__Output[]) => [...new Set(tasks.map((t) => t.slot))].sort((a, b) => a - b);

describe('rolling update: pace', () => {
  it('begins an update by replacing `parallelism` slots, lowest first, and records it as updating', () => {
    const s = updated(6, { parallelism: 2 });
    const plan = reconcileReplicated(s, oldTasks(s, 6), NOW);
    expect(plan.service!.update_status).toEqual({ state: 'updating', started_at: iso(NOW), completed_at: '', message: 'update in progress' });
    expect(plan.update.map((t) => [t.slot, t.desired_state])).toEqual([
      [1, 'SHUTDOWN'],
      [2, 'SHUTDOWN'],
    ]);
    expect(plan.create.map((t) => [t.slot, t.spec_version, t.spec!.container!.image])).toEqual([
      [1, 2, 'shoal-test:v2'],
      [2, 2, 'shoal-test:v2'],
    ]);
  });

  it('starts the next batch once the batch before runs, without waiting out its monitor period', () => {
    const s = updated(4, { parallelism: 2, monitor_ms: 5000 }, {});
    const tasks = [running(s, 1, 2, NOW - 6000), running(s, 2, 2, NOW - 1000), running(s, 3, 1, START - 1), running(s, 4, 1, START - 1)];
    const plan = reconcileReplicated(s, tasks, NOW);
    expect(slotsOf(plan.create)).toEqual([3, 4]);
    expect(plan.service).toBeUndefined();
  });

  it('is not complete while a new task has not yet run for the monitor period, and looks again when it has', () => {
    const s = updated(2, { monitor_ms: 5000 }, {});
    const plan = reconcileReplicated(s, [running(s, 1, 2, NOW - 6000), running(s, 2, 2, NOW - 1000)], NOW);
    expect(plan.service).toBeUndefined();
    expect(plan.create).toEqual([]);
    expect(plan.wakeAt).toBe(NOW - 1000 + 5000);
  });

  it('counts a new task that is not yet running as in flight', () => {
    const s = updated(3, { parallelism: 1 }, {});
    const pending = task(s, 1, 'PREPARING', { spec_version: 2, created_at: iso(START + 1) });
    const plan = reconcileReplicated(s, [pending, running(s, 2, 1, START - 1), running(s, 3, 1, START - 1)], NOW);
    expect(plan.create).toEqual([]);
  });

  it('waits `delay` after the last new task started running before the next batch', () => {
    const s = updated(3, { parallelism: 1, monitor_ms: 5000, delay_ms: 10_000 }, {});
    const tasks = [running(s, 1, 2, NOW - 3000), running(s, 2, 1, START - 1), running(s, 3, 1, START - 1)];
    // Slot 1 runs since NOW-3000: the next batch may start at NOW+7000.
    const waiting = reconcileReplicated(s, tasks, NOW);
    expect(waiting.create).toEqual([]);
    expect(waiting.wakeAt).toBe(NOW + 2000);
    expect(reconcileReplicated(s, tasks, NOW + 2000).create).toEqual([]);
    expect(reconcileReplicated(s, tasks, NOW + 2000).wakeAt).toBe(NOW + 7000);
    expect(slotsOf(reconcileReplicated(s, tasks, NOW + 7000).create)).toEqual([2]);
  });

  it('replaces slots whose old task is not running first', () => {
    const s = updated(3, { parallelism: 1 });
    const pending = task(s, 3, 'PENDING', { spec_version: 1, node_id: '', created_at: iso(START - 10) });
    const plan = reconcileReplicated(s, [running(s, 1, 1, START - 100), running(s, 2, 1, START - 100), pending], NOW);
    expect(slotsOf(plan.create)).toEqual([3]);
    expect(plan.remove.map((t) => t.id)).toEqual([pending.id]);
    expect(plan.update).toEqual([]);
  });

  it('replaces every outdated slot at once with parallelism 0', () => {
    const s = updated(5, { parallelism: 0 });
    expect(slotsOf(reconcileReplicated(s, oldTasks(s, 5), NOW).create)).toEqual([1, 2, 3, 4, 5]);
  });

  it('completes once no slot is outdated or in flight', () => {
    const s = updated(2, { monitor_ms: 5000 }, {});
    const plan = reconcileReplicated(s, [running(s, 1, 2, NOW - 9000), running(s, 2, 2, NOW - 5000)], NOW);
    expect(plan.service!.update_status).toEqual({ state: 'completed', started_at: iso(START), completed_at: iso(NOW), message: 'update completed' });
  });

  it('touches no running task when only the replica count changed', () => {
    const s = original(5);
    const tasks = oldTasks(s, 3);
    const plan = reconcileReplicated(s, tasks, NOW);
    expect(plan.update).toEqual([]);
    expect(slotsOf(plan.create)).toEqual([4, 5]);
    expect(plan.service).toBeUndefined();
  });

  it('goes on from the stored status alone, as a new leader does mid-update', () => {
    const s = updated(4, { parallelism: 2, monitor_ms: 1000 }, {});
    // Slots 1 and 2 were replaced by the leader before, and their tasks have been running long enough.
    const tasks = [running(s, 1, 2, NOW - 2000, START + 1), running(s, 2, 2, NOW - 2000, START + 1), running(s, 3, 1, START - 1), running(s, 4, 1, START - 1)];
    const plan = reconcileReplicated(s, tasks, NOW);
    expect(slotsOf(plan.create)).toEqual([3, 4]);
    expect(plan.service).toBeUndefined();
  });
});

describe('rolling update: order', () => {
  it('stop-first holds the new task in READY until the old one has stopped', () => {
    const s = updated(1, {}, {});
    const stoppingOld = task(s, 1, 'RUNNING', { spec_version: 1, desired_state: 'SHUTDOWN', created_at: iso(START - 10) });
    const held = task(s, 1, 'ASSIGNED', { spec_version: 2, desired_state: 'READY', created_at: iso(START + 1) });
    expect(reconcileReplicated(s, [stoppingOld, held], NOW).update).toEqual([]);
    const stopped = { ...stoppingOld, status: { ...stoppingOld.status!, state: 'SHUTDOWN' as const } };
    expect(reconcileReplicated(s, [stopped, held], NOW).update).toEqual([{ ...held, desired_state: 'RUNNING' }]);
  });

  it('start-first runs the new task beside the old one, and stops the old one once the new one runs', () => {
    const s = updated(1, { order: 'start-first' });
    const old = running(s, 1, 1, START - 100);
    const begin = reconcileReplicated(s, [old], NOW);
    expect(begin.update).toEqual([]);
    expect(begin.create.map((t) => [t.slot, t.desired_state])).toEqual([[1, 'RUNNING']]);
    const underWay = { ...s, update_status: begin.service!.update_status };
    const starting = { ...begin.create[0], status: { ...begin.create[0].status!, state: 'STARTING' as const } };
    expect(reconcileReplicated(underWay, [old, starting], NOW + 100)).toMatchObject({ create: [], update: [] });
    const up = { ...starting, status: { ...starting.status!, state: 'RUNNING' as const, timestamp: iso(NOW + 200) } };
    expect(reconcileReplicated(underWay, [old, up], NOW + 300).update).toEqual([{ ...old, desired_state: 'SHUTDOWN' }]);
  });
});

describe('rolling update: failures', () => {
  const failedNew = (s: Service__Output, slot: number) =>
    task(s, slot, 'FAILED', { spec_version: 2, created_at: iso(START + 1), status: { state: 'FAILED', timestamp: iso(START + 2), message: '', err: 'exit code 1', container: null, health: '' } });

  it('pauses at the first failure by default, naming the task, and replaces nothing more while paused', () => {
    const s = updated(4, {}, {});
    const tasks = [failedNew(s, 1), running(s, 2, 1, START - 1), running(s, 3, 1, START - 1), running(s, 4, 1, START - 1)];
    const plan = reconcileReplicated(s, tasks, NOW);
    expect(plan.service!.update_status!.state).toBe('paused');
    expect(plan.service!.update_status!.message).toMatch(/^task web\.1 \(\S+\) failed: exit code 1; 1 of 4 updated tasks failed, more than the max failure ratio 0$/);
    expect(plan.create.filter((t) => t.slot !== 1)).toEqual([]);
    const paused = { ...s, update_status: plan.service!.update_status };
    expect(decideUpdate(paused, new Map(tasks.map((t) => [String(t.slot), [t]])), NOW).replace.size).toBe(0);
  });

  it('tolerates failures up to max_failure_ratio', () => {
    const s = updated(4, { max_failure_ratio: 0.25 }, {});
    const tasks = [failedNew(s, 1), running(s, 2, 1, START - 1), running(s, 3, 1, START - 1), running(s, 4, 1, START - 1)];
    const plan = reconcileReplicated(s, tasks, NOW);
    expect(plan.service).toBeUndefined();
    // The failed slot is done with (its restart is the restart policy's); the next slot goes.
    expect(plan.update.filter((t) => t.spec_version === 1).map((t) => t.slot)).toEqual([2]);
  });

  it('goes on whatever fails with failure_action continue', () => {
    const s = updated(2, { failure_action: 'continue' }, {});
    const plan = reconcileReplicated(s, [failedNew(s, 1), running(s, 2, 1, START - 1)], NOW);
    expect(plan.service).toBeUndefined();
    expect(plan.update.filter((t) => t.spec_version === 1).map((t) => t.slot)).toEqual([2]);
  });

  it('does not count failures of an earlier rollout', () => {
    const s = updated(2, {}, {});
    const earlier = { ...failedNew(s, 1), desired_state: 'SHUTDOWN' as const, created_at: iso(START - 5000) };
    const plan = reconcileReplicated(s, [earlier, running(s, 1, 1, START - 1), running(s, 2, 1, START - 1)], NOW);
    expect(plan.service).toBeUndefined();
    expect(slotsOf(plan.create)).toEqual([1]);
  });

  it('rolls back to the previous spec with failure_action rollback, writing only the service', () => {
    const s = updated(3, { failure_action: 'rollback' }, {});
    const plan = reconcileReplicated(s, [failedNew(s, 1), running(s, 2, 1, START - 1), running(s, 3, 1, START - 1)], NOW);
    expect(plan).toMatchObject({ create: [], update: [], remove: [] });
    const back = plan.service!;
    expect(back.spec!.task_template!.container!.image).toBe('shoal-test:v1');
    expect([back.spec_version, back.previous_spec_version]).toEqual([1, 2]);
    expect(back.previous_spec!.task_template!.container!.image).toBe('shoal-test:v2');
    expect(back.update_status).toMatchObject({ state: 'rollback_started', started_at: iso(NOW), message: expect.stringMatching(/^task web\.1 \(\S+\) failed: exit code 1; 1 of 3 updated tasks failed/) });
  });

  it('pauses instead when there is no previous spec to roll back to', () => {
    const s = { ...updated(2, { failure_action: 'rollback' }, {}), previous_spec: null };
    const plan = reconcileReplicated(s, [failedNew(s, 1), running(s, 2, 1, START - 1)], NOW);
    expect(plan.service!.update_status!.state).toBe('paused');
    expect(plan.service!.update_status!.message).toMatch(/no previous spec to roll back to$/);
  });
});

describe('rolling update: health checks', () => {
  // The worker reports a task with a check STARTING until a check passes and RUNNING (healthy) from then on.
  const startingNew = (s: Service__Output, slot: number) =>
    task(s, slot, 'STARTING', { spec_version: 2, created_at: iso(START + 1), status: { state: 'STARTING', timestamp: iso(START + 2), message: '', err: '', container: null, health: 'starting' } });

  it('holds the next batch while a new task has not passed its check, and monitors it from when it did', () => {
    const s = updated(2, { monitor_ms: 5000 }, {});
    const waiting = reconcileReplicated(s, [startingNew(s, 1), running(s, 2, 1, START - 1)], NOW);
    expect(waiting.create).toEqual([]);
    expect(waiting.update).toEqual([]);
    const healthy = running(s, 1, 2, NOW - 1000, START + 1);
    const next = reconcileReplicated(s, [{ ...healthy, status: { ...healthy.status!, health: 'healthy' } }, running(s, 2, 1, START - 1)], NOW);
    expect(slotsOf(next.create)).toEqual([2]);
    expect(next.wakeAt).toBe(NOW - 1000 + 5000);
  });

  it('counts a new task that failed as unhealthy against the update, and rolls back per its failure action', () => {
    const s = updated(2, { failure_action: 'rollback' }, {});
    const unhealthy = task(s, 1, 'FAILED', {
      spec_version: 2,
      created_at: iso(START + 1),
      status: { state: 'FAILED', timestamp: iso(START + 3), message: 'unhealthy', err: 'unhealthy container: 3 health checks in a row failed; the last: exit status 1', container: null, health: 'unhealthy' },
    });
    const plan = reconcileReplicated(s, [unhealthy, running(s, 2, 1, START - 1)], NOW);
    expect(plan.service!.update_status!.state).toBe('rollback_started');
    expect(plan.service!.update_status!.message).toMatch(/^task web\.1 \(\S+\) failed: unhealthy container: 3 health checks in a row failed; the last: exit status 1; 1 of 2 updated/);
    expect(plan.service!.spec!.task_template!.container!.image).toBe('shoal-test:v1');
  });
});

describe('rollback', () => {
  /** The service after an automatic rollback from v2 to v1, rolling out with its rollback config. */
  function rollingBack(replicas: number, rollback: UpdateConfig, status: Partial<UpdateStatus__Output> = {}): Service__Output {
    const v2 = updated(replicas, {}, null, rollback);
    return {
      ...v2,
      spec: v2.previous_spec,
      spec_version: 1,
      previous_spec: v2.spec,
      previous_spec_version: 2,
      update_status: { state: 'rollback_started', started_at: iso(START), completed_at: '', message: 'manually requested rollback', ...status },
    };
  }

  it('replaces the slots on the abandoned spec following the rollback config', () => {
    const s = rollingBack(4, { parallelism: 3 });
    const tasks = [1, 2, 3, 4].map((slot) => running(s, slot, slot === 4 ? 1 : 2, START - 100));
    const plan = reconcileReplicated(s, tasks, NOW);
    expect(slotsOf(plan.create)).toEqual([1, 2, 3]);
    expect(plan.create.every((t) => t.spec_version === 1 && t.spec!.container!.image === 'shoal-test:v1')).toBe(true);
  });

  it('pauses a failing rollback rather than rolling back again', () => {
    const s = rollingBack(2, { failure_action: 'pause' });
    const failed = task(s, 1, 'FAILED', { spec_version: 1, created_at: iso(START + 1) });
    const plan = reconcileReplicated(s, [failed, running(s, 2, 2, START - 100)], NOW);
    expect(plan.service!.update_status!.state).toBe('rollback_paused');
    expect(plan.service!.update_status!.message).toMatch(/; 1 of 2 rolled back tasks failed, more than the max failure ratio 0$/);
    expect(plan.service!.spec_version).toBe(1);
  });

  it('completes as rollback_completed, keeping why it was started', () => {
    const s = rollingBack(2, { monitor_ms: 1000 });
    const plan = reconcileReplicated(s, [running(s, 1, 1, NOW - 2000, START + 1), running(s, 2, 1, START - 600_000)], NOW);
    expect(plan.service!.update_status).toEqual({
      state: 'rollback_completed',
      started_at: iso(START),
      completed_at: iso(NOW),
      message: 'manually requested rollback',
    });
  });
});

describe('rolling update of a global service', () => {
  it('replaces `parallelism` nodes’ tasks at a time', () => {
    const node = (id: string): Node__Output =>
      ({ id, spec: { role: 'worker', availability: 'active', labels: {} }, status: { state: 'NODE_READY' }, description: { hostname: id } }) as Node__Output;
    const base = updated(0, { parallelism: 2 });
    const s = { ...base, spec: { ...base.spec!, mode: { mode: 'global' as const, global: {} } } };
    const tasks = ['a', 'b', 'c'].map((n) => ({ ...running(s, 0, 1, START - 100), node_id: n }));
    const plan = reconcileGlobal(s, ['a', 'b', 'c'].map(node), tasks, NOW);
    expect(plan.create.map((t) => t.node_id)).toEqual(['a', 'b']);
    expect(plan.update.map((t) => [t.node_id, t.desired_state])).toEqual([
      ['a', 'SHUTDOWN'],
      ['b', 'SHUTDOWN'],
    ]);
  });
});
