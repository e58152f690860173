import type { Service__Output } from '../../gen/shoal/v1/Service';
import type { Task__Output } from '../../gen/shoal/v1/Task';
import type { RestartPolicy__Output } from '../../gen/shoal/v1/RestartPolicy';
import { isTerminal, newId, wantsRunning } from '../../common/tasks';

/** Tasks kept per slot, current one included, so `service ps` shows recent history (Swarm keeps 5). */
export const TASK_HISTORY_LIMIT = 5;

export interface Plan {
  create: Task__Output[];
  update: Task__Output[];
  remove: Task__Output[];
  /** Earliest time (ms) at which a waiting task must be promoted; the loop sleeps until then. */
  wakeAt?: number;
}

/**
 * Decides, from a replicated service and all of its tasks, which tasks to create, change and
 * delete so that slots 1..replicas each hold one live task. Pure: the caller commits the plan.
 *
 * A slot's live task is the one whose desired state is READY or RUNNING. A task that ended and
 * may not be restarted keeps desired RUNNING, so it still holds its slot and no replacement is
 * made — that is how restart-condition none / on-failure / max-attempts stay satisfied.
 */
export function reconcileReplicated(service: Service__Output, tasks: Task__Output[], nowMs: number): Plan {
  const plan: Plan = { create: [], update: [], remove: [] };
  const replicas = service.spec?.mode?.replicated?.replicas ?? 0;
  const slots = groupBySlot(tasks);
  for (let slot = 1; slot <= replicas; slot++) if (!slots.has(slot)) slots.set(slot, []);

  for (const [slot, slotTasks] of slots) {
    const live = slotTasks.filter((t) => wantsRunning(t.desired_state)).sort(newestFirst);
    // More than one live task can only come from a crash between writes; the newest wins.
    for (const extra of live.slice(1)) plan.update.push(withDesired(extra, 'SHUTDOWN'));
    const current = live[0];

    if (slot > replicas) {
      // A slot scaled away keeps no history: its tasks go once they have stopped, as Swarm's reaper does.
      if (current) plan.update.push(withDesired(current, 'SHUTDOWN'));
      plan.remove.push(...slotTasks.filter((t) => isTerminal(t.status!.state) && !wantsRunning(t.desired_state)));
      continue;
    } else if (!current) {
      plan.create.push(newTask(service, slot, [], nowMs, 0));
    } else if (current.spec_version < service.spec_version) {
      plan.update.push(withDesired(current, 'SHUTDOWN'));
      plan.create.push(newTask(service, slot, [], nowMs, 0));
    } else if (isTerminal(current.status!.state) && current.desired_state === 'RUNNING') {
      const policy = service.spec!.task_template!.restart_policy!;
      const history = restartsInWindow(current, policy, nowMs);
      if (shouldRestart(current, policy, history.length)) {
        plan.update.push(withDesired(current, 'SHUTDOWN'));
        plan.create.push(newTask(service, slot, [...history, new Date(nowMs).toISOString()], nowMs, policy.delay_ms ?? 0));
      }
    } else if (current.desired_state === 'READY') {
      const startAt = Date.parse(current.start_after) || 0;
      if (startAt <= nowMs) plan.update.push(withDesired(current, 'RUNNING'));
      else plan.wakeAt = Math.min(plan.wakeAt ?? Infinity, startAt);
    }

    plan.remove.push(...expiredHistory(slotTasks, plan));
  }
  return plan;
}

/**
 * Tasks of a service that no longer exists: ask their worker to remove them, and delete them
 * once they have ended (or never reached a node).
 */
export function reconcileOrphanedTasks(tasks: Task__Output[]): Plan {
  const plan: Plan = { create: [], update: [], remove: [] };
  for (const t of tasks) {
    if (isTerminal(t.status!.state) || !t.node_id) plan.remove.push(t);
    else if (t.desired_state !== 'REMOVE') plan.update.push(withDesired(t, 'REMOVE'));
  }
  return plan;
}

function shouldRestart(task: Task__Output, policy: RestartPolicy__Output, restarts: number): boolean {
  if (policy.condition === 'none') return false;
  if (policy.condition === 'on-failure' && task.status!.state === 'COMPLETE') return false;
  return policy.max_attempts <= 0 || restarts < policy.max_attempts;
}

function restartsInWindow(task: Task__Output, policy: RestartPolicy__Output, nowMs: number): string[] {
  if (policy.window_ms <= 0) return task.restart_times;
  return task.restart_times.filter((t) => Date.parse(t) >= nowMs - policy.window_ms);
}

/** Ended tasks beyond the per-slot history limit, oldest first; never the slot's live task. */
function expiredHistory(slotTasks: Task__Output[], plan: Plan): Task__Output[] {
  const shuttingDown = new Set(plan.update.filter((t) => !wantsRunning(t.desired_state)).map((t) => t.id));
  const newInSlot = plan.create.filter((t) => t.slot === slotTasks[0]?.slot).length;
  const sorted = [...slotTasks].sort(newestFirst);
  return sorted
    .slice(Math.max(0, TASK_HISTORY_LIMIT - newInSlot))
    .filter((t) => isTerminal(t.status!.state) && (!wantsRunning(t.desired_state) || shuttingDown.has(t.id)));
}

function groupBySlot(tasks: Task__Output[]): Map<number, Task__Output[]> {
  const slots = new Map<number, Task__Output[]>();
  for (const t of tasks) {
    const list = slots.get(t.slot) ?? [];
    list.push(t);
    slots.set(t.slot, list);
  }
  return slots;
}

const newestFirst = (a: Task__Output, b: Task__Output) => b.created_at.localeCompare(a.created_at) || b.id.localeCompare(a.id);

function withDesired(task: Task__Output, desired: Task__Output['desired_state']): Task__Output {
  return { ...task, desired_state: desired };
}

function newTask(service: Service__Output, slot: number, restartTimes: string[], nowMs: number, delayMs: number): Task__Output {
  const createdAt = new Date(nowMs).toISOString();
  return {
    id: newId(),
    version: 0,
    service_id: service.id,
    service_name: service.spec!.name,
    slot,
    node_id: '',
    spec_version: service.spec_version,
    spec: service.spec!.task_template,
    desired_state: delayMs > 0 ? 'READY' : 'RUNNING',
    status: { state: 'PENDING', timestamp: createdAt, message: 'pending task scheduling', err: '', container: null },
    created_at: createdAt,
    start_after: delayMs > 0 ? new Date(nowMs + delayMs).toISOString() : '',
    schedule_error: '',
    restart_times: restartTimes,
  };
}
