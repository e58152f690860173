import type { Node__Output } from '../gen/shoal/v1/Node';
import type { Task__Output } from '../gen/shoal/v1/Task';
import type { Logger } from '../common/logger';
import { now } from '../common/tasks';
import { partitionTasks, schedule, schedulingRole, type ScheduleResult } from '../scheduler/schedule';
import { FAILED_SERVICE_RETRY_MS, isConflict, messageOf, reportConvergence } from './convergence-errors';
import type { Change, StoreCache } from './store/cache';
import type { Op, Versioned } from './store/store';

export interface PlacementPlans {
  /** Per service id, the writes that record its placements and why its other tasks could not be placed. */
  plans: Map<string, Op[]>;
  /** Per service id, why it could not be scheduled. */
  failures: Map<string, string>;
  /** Pending tasks left for the next pass. */
  deferred: number;
}

/**
 * Tasks placed per pass: placing and writing 100,000 at once held the manager's only thread for
 * seconds (its etcd leases lapsed); in batches, the first ones reach their nodes sooner too.
 */
export const PLACEMENTS_PER_PASS = 2000;

/**
 * Whether a task's change may change what the scheduler decides: it became or stopped being
 * pending, or took or freed a node. Most changes of a scale-up (a task reported running) do
 * not, and a pass over 100,000 tasks for each of them kept the leader busy for nothing.
 */
export function changesPlacement(change: Change | undefined): boolean {
  const role = (t: Versioned | undefined) => (t ? schedulingRole(t as unknown as Task__Output) : '');
  return !change || role(change.before) !== role(change.after);
}

/** Pending tasks per service: services with tasks bound to a node first, as schedule() does, then the longest waiting. */
function pendingByService(pending: Task__Output[]): Task__Output[][] {
  const groups = new Map<string, Task__Output[]>();
  for (const t of pending) {
    const group = groups.get(t.service_id);
    if (group) group.push(t);
    else groups.set(t.service_id, [t]);
  }
  const pinned = (g: Task__Output[]) => (g.some((t) => t.node_id) ? 0 : 1);
  const oldest = (g: Task__Output[]) => g.reduce((min, t) => (t.created_at < min ? t.created_at : min), g[0].created_at);
  return [...groups.values()].sort((a, b) => pinned(a) - pinned(b) || oldest(a).localeCompare(oldest(b)));
}

/**
 * Schedules up to `limit` pending tasks at once (those first in `tasks`, the rest are deferred);
 * if that throws, it schedules service by service, each against the placements made before it,
 * so that only the service that makes the scheduler throw gets a failure and the others are
 * placed as usual. Pure but for the timestamp.
 */
export function planPlacements(nodes: Node__Output[], tasks: Task__Output[], limit = Infinity): PlacementPlans {
  const partition = partitionTasks(tasks);
  const { active } = partition;
  const pending = partition.pending.slice(0, limit);
  const deferred = partition.pending.length - pending.length;
  const failures = new Map<string, string>();
  // Most passes are kicked by status reports, with nothing to place: no per-node view to build.
  if (!pending.length) return { plans: new Map(), failures, deferred };
  let result: ScheduleResult;
  try {
    result = schedule(nodes, active, pending);
  } catch {
    result = { placements: [], unplaced: [] };
    for (const group of pendingByService(pending)) {
      try {
        const own = schedule(nodes, active, group);
        result.placements.push(...own.placements);
        result.unplaced.push(...own.unplaced);
        const byId = new Map(group.map((t) => [t.id, t]));
        for (const p of own.placements) active.push({ ...byId.get(p.taskId)!, node_id: p.nodeId });
      } catch (err) {
        failures.set(group[0].service_id, `scheduling its tasks failed: ${messageOf(err)}`);
      }
    }
  }

  const byId = new Map(pending.map((t) => [t.id, t]));
  const plans = new Map<string, Op[]>();
  const add = (obj: Task__Output) => {
    const ops = plans.get(obj.service_id);
    if (ops) ops.push({ type: 'update', kind: 'tasks', obj });
    else plans.set(obj.service_id, [{ type: 'update', kind: 'tasks', obj }]);
  };
  const timestamp = now();
  for (const p of result.placements) {
    const t = byId.get(p.taskId)!;
    const status = { ...t.status!, state: 'ASSIGNED' as const, timestamp, message: 'scheduler assigned task to node', err: '' };
    add({ ...t, node_id: p.nodeId, schedule_error: '', status });
  }
  for (const u of result.unplaced) {
    const t = byId.get(u.taskId)!;
    if (t.schedule_error !== u.reason) add({ ...t, schedule_error: u.reason, status: { ...t.status!, timestamp, err: u.reason } });
  }
  return { plans, failures, deferred };
}

/**
 * One scheduler pass, read from the cache once it shows this loop's own writes: places every
 * unassigned task that wants to run, and records why others cannot be. Each service's writes are
 * committed on their own, so a service whose scheduling or writes fail holds back no other; its
 * failure is logged and recorded on it for `service ps`.
 */
export async function schedulePending(cache: StoreCache, log: Logger): Promise<number | undefined> {
  await cache.settled();
  const { plans, failures, deferred } = planPlacements(cache.nodes(), cache.tasks(), PLACEMENTS_PER_PASS);
  let retry = failures.size > 0;
  for (const [serviceId, ops] of plans) {
    try {
      await cache.commit(ops);
    } catch (err) {
      retry = true;
      if (isConflict(err)) log.debug({ err, serviceId }, 'a write conflicted with a newer change; retrying');
      else failures.set(serviceId, `writing its placements failed: ${messageOf(err)}`);
    }
  }
  await reportConvergence(cache, 'scheduler', cache.services(), failures, log);
  if (deferred) return Date.now();
  return retry ? Date.now() + FAILED_SERVICE_RETRY_MS : undefined;
}
