import { describe, expect, it } from 'vitest';
import { reconcileOrphanedTasks, reconcileReplicated, TASK_HISTORY_LIMIT } from '../../src/manager/orchestrator/replicated';
import { service, task } from '../fixtures';

const NOW = Date.UTC(2026, 0, 2);

describe('replicated orchestrator', () => {
  it('creates one task per empty slot', () => {
    const plan = reconcileReplicated(service(3), [], NOW);
    expect(plan.create.map((t) => t.slot).sort()).toEqual([1, 2, 3]);
    expect(plan.create.every((t) => t.desired_state === 'RUNNING' && t.status!.state === 'PENDING')).toBe(true);
    expect(plan.update).toEqual([]);
  });

  it('fills at most the budget of empty slots, lowest first, and asks to run again at once', () => {
    const s = service(5);
    const plan = reconcileReplicated(s, [task(s, 2, 'RUNNING')], NOW, 2);
    expect(plan.create.map((t) => t.slot).sort()).toEqual([1, 3]);
    expect(plan.wakeAt).toBe(NOW);
    expect(reconcileReplicated(s, [task(s, 2, 'RUNNING')], NOW, 4).wakeAt).toBeUndefined();
  });

  it('does nothing when every slot has a running task', () => {
    const s = service(2);
    const plan = reconcileReplicated(s, [task(s, 1, 'RUNNING'), task(s, 2, 'RUNNING')], NOW);
    expect(plan).toEqual({ create: [], update: [], remove: [] });
  });

  it('scales down by shutting down the highest slots', () => {
    const s = service(1);
    const tasks = [task(s, 1, 'RUNNING'), task(s, 2, 'RUNNING'), task(s, 3, 'RUNNING')];
    const plan = reconcileReplicated(s, tasks, NOW);
    expect(plan.update.map((t) => [t.slot, t.desired_state])).toEqual([
      [2, 'SHUTDOWN'],
      [3, 'SHUTDOWN'],
    ]);
    expect(plan.create).toEqual([]);
  });

  it('deletes the stopped tasks of slots scaled away', () => {
    const s = service(1);
    const stopped = task(s, 2, 'SHUTDOWN', { desired_state: 'SHUTDOWN' });
    const stopping = task(s, 3, 'RUNNING', { desired_state: 'SHUTDOWN' });
    const plan = reconcileReplicated(s, [task(s, 1, 'RUNNING'), stopped, stopping], NOW);
    expect(plan.remove.map((t) => t.id)).toEqual([stopped.id]);
  });

  it('replaces a failed task, recording the restart', () => {
    const s = service(1);
    const failed = task(s, 1, 'FAILED');
    const plan = reconcileReplicated(s, [failed], NOW);
    expect(plan.update).toEqual([{ ...failed, desired_state: 'SHUTDOWN' }]);
    expect(plan.create).toHaveLength(1);
    expect(plan.create[0].slot).toBe(1);
    expect(plan.create[0].restart_times).toEqual([new Date(NOW).toISOString()]);
  });

  it('holds a replacement in READY until the restart delay has passed', () => {
    const s = service(1, { delay_ms: 5000 });
    const plan = reconcileReplicated(s, [task(s, 1, 'FAILED')], NOW);
    expect(plan.create[0].desired_state).toBe('READY');
    const waiting = plan.create[0];
    expect(reconcileReplicated(s, [waiting], NOW + 1000).wakeAt).toBe(NOW + 5000);
    expect(reconcileReplicated(s, [waiting], NOW + 5000).update).toEqual([{ ...waiting, desired_state: 'RUNNING' }]);
  });

  it('does not restart with condition none, or on-failure after a clean exit', () => {
    const none = service(1, { condition: 'none' });
    const failed = task(none, 1, 'FAILED');
    expect(reconcileReplicated(none, [failed], NOW)).toEqual({ create: [], update: [{ ...failed, desired_state: 'SHUTDOWN' }], remove: [] });
    const onFailure = service(1, { condition: 'on-failure' });
    const complete = task(onFailure, 1, 'COMPLETE');
    expect(reconcileReplicated(onFailure, [complete], NOW)).toEqual({ create: [], update: [{ ...complete, desired_state: 'SHUTDOWN' }], remove: [] });
    expect(reconcileReplicated(onFailure, [task(onFailure, 1, 'FAILED')], NOW).create).toHaveLength(1);
  });

  it('leaves a task that ended and is not restarted shut down, and makes no replacement for it', () => {
    const none = service(1, { condition: 'none' });
    const ended = task(none, 1, 'FAILED', { desired_state: 'SHUTDOWN' });
    expect(reconcileReplicated(none, [ended], NOW)).toEqual({ create: [], update: [], remove: [] });
    const onFailure = service(2, { condition: 'on-failure' });
    const done = [task(onFailure, 1, 'COMPLETE', { desired_state: 'SHUTDOWN' }), task(onFailure, 2, 'REJECTED', { desired_state: 'SHUTDOWN' })];
    expect(reconcileReplicated(onFailure, done, NOW).create.map((t) => t.slot)).toEqual([2]);
  });

  it('still starts a slot whose task was stopped, or made from an older spec, whatever the restart policy', () => {
    const none = service(2, { condition: 'none' });
    const scaledAway = task(none, 2, 'SHUTDOWN', { desired_state: 'SHUTDOWN' });
    const plan = reconcileReplicated(none, [task(none, 1, 'RUNNING'), scaledAway], NOW);
    expect(plan.create.map((t) => t.slot)).toEqual([2]);
    const updated = { ...none, spec_version: 2 };
    const oldSpec = task(none, 1, 'FAILED', { desired_state: 'SHUTDOWN', spec_version: 1 });
    expect(reconcileReplicated(updated, [oldSpec, task(updated, 2, 'RUNNING')], NOW).create.map((t) => [t.slot, t.spec_version])).toEqual([[1, 2]]);
  });

  it('stops restarting after max attempts, counting only restarts inside the window', () => {
    const s = service(1, { max_attempts: 2 });
    const times = [new Date(NOW - 2000).toISOString(), new Date(NOW - 1000).toISOString()];
    const third = task(s, 1, 'FAILED', { restart_times: times });
    expect(reconcileReplicated(s, [third], NOW)).toEqual({ create: [], update: [{ ...third, desired_state: 'SHUTDOWN' }], remove: [] });
    expect(reconcileReplicated(s, [{ ...third, desired_state: 'SHUTDOWN' }], NOW)).toEqual({ create: [], update: [], remove: [] });
    const windowed = service(1, { max_attempts: 2, window_ms: 1500 });
    const plan = reconcileReplicated(windowed, [task(windowed, 1, 'FAILED', { restart_times: times })], NOW);
    expect(plan.create[0].restart_times).toEqual([times[1], new Date(NOW).toISOString()]);
    // Once the restarts it gave up after have left the window, the slot is restarted again.
    const gaveUp = task(windowed, 1, 'FAILED', { desired_state: 'SHUTDOWN', restart_times: times });
    expect(reconcileReplicated(windowed, [gaveUp], NOW - 500).create).toEqual([]);
    expect(reconcileReplicated(windowed, [gaveUp], NOW + 1000).create[0].restart_times).toEqual([new Date(NOW + 1000).toISOString()]);
  });

  it('replaces tasks made from an older spec version', () => {
    const s = { ...service(1), spec_version: 2 };
    const old = task(s, 1, 'RUNNING', { spec_version: 1 });
    const plan = reconcileReplicated(s, [old], NOW);
    expect(plan.update).toEqual([{ ...old, desired_state: 'SHUTDOWN' }]);
    expect(plan.create[0].spec_version).toBe(2);
  });

  it('keeps a bounded history per slot, deleting the oldest ended tasks', () => {
    const s = service(1);
    const history = Array.from({ length: TASK_HISTORY_LIMIT + 2 }, () => task(s, 1, 'FAILED', { desired_state: 'SHUTDOWN' }));
    const current = task(s, 1, 'RUNNING');
    const plan = reconcileReplicated(s, [...history, current], NOW);
    expect(plan.remove.map((t) => t.id)).toEqual(history.slice(0, 3).map((t) => t.id).reverse());
  });

  it('keeps only the newest live task if a slot somehow has two', () => {
    const s = service(1);
    const older = task(s, 1, 'RUNNING');
    const newer = task(s, 1, 'RUNNING');
    expect(reconcileReplicated(s, [older, newer], NOW).update).toEqual([{ ...older, desired_state: 'SHUTDOWN' }]);
  });

  it('removes tasks of deleted services once they have ended', () => {
    const s = service(1);
    const running = task(s, 1, 'RUNNING');
    const ended = task(s, 2, 'SHUTDOWN', { desired_state: 'REMOVE' });
    const unassigned = task(s, 3, 'PENDING', { node_id: '' });
    const plan = reconcileOrphanedTasks([running, ended, unassigned]);
    expect(plan.update).toEqual([{ ...running, desired_state: 'REMOVE' }]);
    expect(plan.remove.map((t) => t.id)).toEqual([ended.id, unassigned.id]);
  });
});
