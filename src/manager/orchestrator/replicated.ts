import type { Node__Output } from '../../gen/shoal/v1/Node';
import type { Service__Output } from '../../gen/shoal/v1/Service';
import type { Task__Output } from '../../gen/shoal/v1/Task';
import type { RestartPolicy__Output } from '../../gen/shoal/v1/RestartPolicy';
import { endedByItself, isTerminal, newId, rank, wantsRunning } from '../../common/tasks';
import { decideUpdate, type UpdateDecision, type UpdateOrder } from './update';

/** Tasks kept per slot, current one included, so `service ps` shows recent history (Swarm keeps 5). */
export const TASK_HISTORY_LIMIT = 5;

export interface Plan {
  create: Task__Output[];
  update: Task__Output[];
  remove: Task__Output[];
  /** Earliest time (ms) at which a waiting task must be promoted; the loop sleeps until then. */
  wakeAt?: number;
  /** The service, when its update status changes or a rollback restores its previous spec. */
  service?: Service__Output;
}

/**
 * Decides, from a replicated service and all of its tasks, which tasks to create, change and
 * delete so that slots 1..replicas each hold one live task. Pure: the caller commits the plan.
 *
 * A slot's live task is the one whose desired state is READY or RUNNING. A task that ended and
 * may not be restarted is set to desired SHUTDOWN, as in Swarm; while it is the newest task of
 * its slot and made from the current spec, the restart policy (not a fresh start) decides the
 * empty slot, so no replacement is made — that is how restart-condition none / on-failure /
 * max-attempts stay satisfied. Tasks made from another spec are replaced as the rolling update
 * decides (decideUpdate); a change of the replica count alone leaves running tasks alone.
 * At most `newSlots` slots that hold no task yet get one in this plan.
 */
export function reconcileReplicated(service: Service__Output, tasks: Task__Output[], nowMs: number, newSlots = Infinity): Plan {
  const replicas = service.spec?.mode?.replicated?.replicas ?? 0;
  const slots = groupBySlot(tasks);
  let deferred = false;
  for (let slot = 1, fresh = 0; slot <= replicas; slot++) {
    if (slots.has(slot)) continue;
    if (fresh++ < newSlots) slots.set(slot, []);
    else deferred = true;
  }
  const kept = new Map([...slots].filter(([slot]) => slot <= replicas).map(([slot, list]) => [String(slot), list]));
  const { plan, update } = startPlan(service, kept, nowMs);
  // Slots past the budget are as if the service had fewer replicas for now; the next pass fills them.
  if (deferred) plan.wakeAt = Math.min(plan.wakeAt ?? Infinity, nowMs);
  if (!update) return plan;

  for (const [slot, slotTasks] of slots) {
    if (slot > replicas) {
      // A slot scaled away keeps no history: its tasks go once they have stopped, as Swarm's reaper does.
      for (const t of slotTasks) if (wantsRunning(t.desired_state)) stopTask(t, plan);
      plan.remove.push(...slotTasks.filter((t) => isTerminal(t.status!.state) && !wantsRunning(t.desired_state)));
    } else {
      reconcileSlot(service, slotTasks, nowMs, plan, { slot, nodeId: '' }, { replace: update.replace.has(String(slot)), order: update.order });
    }
  }
  return plan;
}

/**
 * A plan begun with the rolling update's decision over `slots`; when the decision is a rollback,
 * the plan only stores the restored spec (no update is returned), and the next pass rolls it out.
 */
export function startPlan(service: Service__Output, slots: Map<string, Task__Output[]>, nowMs: number): { plan: Plan; update?: UpdateDecision } {
  const update = decideUpdate(service, slots, nowMs);
  const plan: Plan = { create: [], update: [], remove: [] };
  if (update.service) plan.service = update.service;
  if (update.wakeAt !== undefined) plan.wakeAt = update.wakeAt;
  return update.service && update.service.spec !== service.spec ? { plan } : { plan, update };
}

/** Where a slot's tasks go: a replicated slot number, or (global mode) slot 0 on one node. */
export interface SlotPlace {
  slot: number;
  nodeId: string;
}

/** What the rolling update wants of a slot whose live task is outdated. */
export interface SlotUpdate {
  /** Replace it in this pass; otherwise it waits its turn. */
  replace: boolean;
  order: UpdateOrder;
}

/**
 * Keeps one live task in a slot: creates it when missing, replaces it when it ended and the
 * restart policy restarts it or when it is outdated and the rolling update says so, starts it
 * when its restart delay has passed and (stop-first) the task it replaces has stopped, and
 * trims the slot's history. Adds to `plan`.
 */
export function reconcileSlot(service: Service__Output, slotTasks: Task__Output[], nowMs: number, plan: Plan, place: SlotPlace, update: SlotUpdate): void {
  const live = slotTasks.filter((t) => wantsRunning(t.desired_state)).sort(newestFirst);
  const current = live[0];
  const isCurrent = (t: Task__Output) => t.spec_version === service.spec_version;
  // start-first: an outdated task keeps serving beside its replacement until the replacement runs.
  const replacing = current && isCurrent(current) && !(current.desired_state === 'RUNNING' && current.status!.state === 'RUNNING');
  // More than one live task otherwise only comes from a crash between writes; the newest wins.
  for (const extra of live.slice(1)) if (!(replacing && !isCurrent(extra))) stopTask(extra, plan);
  const created = plan.create.length;

  if (!current) {
    const ended = endedUnreplaced(slotTasks, service);
    const next = ended ? restartOf(service, ended, place, nowMs) : newTask(service, place, [], nowMs, 0);
    if (next) plan.create.push(next);
  } else if (isTerminal(current.status!.state) && current.desired_state === 'RUNNING') {
    plan.update.push(withDesired(current, 'SHUTDOWN'));
    const next = restartOf(service, current, place, nowMs);
    if (next) plan.create.push(next);
  } else if (!isCurrent(current)) {
    if (update.replace && update.order === 'start-first') {
      plan.create.push(newTask(service, place, [], nowMs, 0));
    } else if (update.replace) {
      stopTask(current, plan);
      plan.create.push(newTask(service, place, [], nowMs, 0, true));
    }
  } else if (current.desired_state === 'READY') {
    const startAt = Date.parse(current.start_after) || 0;
    if (startAt > nowMs) plan.wakeAt = Math.min(plan.wakeAt ?? Infinity, startAt);
    else if (!slotTasks.some(stopping)) plan.update.push(withDesired(current, 'RUNNING'));
  }

  plan.remove.push(...expiredHistory(slotTasks, plan, plan.create.length - created));
}

/** A task asked to stop whose node has not yet said it has. */
const stopping = (t: Task__Output) => !wantsRunning(t.desired_state) && !isTerminal(t.status!.state) && !neverAssigned(t);

/**
 * Tasks of a service that no longer exists: ask their worker to remove them, and delete them
 * once they have ended (or never reached a node).
 */
export function reconcileOrphanedTasks(tasks: Task__Output[]): Plan {
  const plan: Plan = { create: [], update: [], remove: [] };
  for (const t of tasks) {
    if (isTerminal(t.status!.state) || neverAssigned(t)) plan.remove.push(t);
    else if (t.desired_state !== 'REMOVE') plan.update.push(withDesired(t, 'REMOVE'));
  }
  return plan;
}

/** The slot's newest task, if it ended by itself, from the current spec, and nothing replaced it. */
function endedUnreplaced(slotTasks: Task__Output[], service: Service__Output): Task__Output | undefined {
  const newest = [...slotTasks].sort(newestFirst)[0];
  return newest && endedByItself(newest.status!.state) && newest.spec_version === service.spec_version ? newest : undefined;
}

/** The task that replaces an ended one, if the restart policy restarts it now. */
function restartOf(service: Service__Output, ended: Task__Output, place: SlotPlace, nowMs: number): Task__Output | undefined {
  const policy = service.spec!.task_template!.restart_policy!;
  const history = restartsInWindow(ended, policy, nowMs);
  if (!shouldRestart(ended, policy, history.length)) return undefined;
  return newTask(service, place, [...history, new Date(nowMs).toISOString()], nowMs, policy.delay_ms ?? 0);
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
function expiredHistory(slotTasks: Task__Output[], plan: Plan, newInSlot: number): Task__Output[] {
  const shuttingDown = new Set(plan.update.filter((t) => !wantsRunning(t.desired_state)).map((t) => t.id));
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

/** A task no node was ever given (global tasks name their node before that) can just go. */
const neverAssigned = (t: Task__Output) => rank(t.status!.state) < rank('ASSIGNED');

/** Stops a task: deleted if it never reached a node, which would otherwise never report it ended. */
export function stopTask(task: Task__Output, plan: Plan): void {
  if (neverAssigned(task)) plan.remove.push(task);
  else plan.update.push(withDesired(task, 'SHUTDOWN'));
}

/** A new task for the slot; `held` ones wait in READY (stop-first) until the slot's old task has stopped. */
function newTask(service: Service__Output, place: SlotPlace, restartTimes: string[], nowMs: number, delayMs: number, held = false): Task__Output {
  const createdAt = new Date(nowMs).toISOString();
  return {
    id: newId(),
    version: 0,
    service_id: service.id,
    service_name: service.spec!.name,
    slot: place.slot,
    node_id: place.nodeId,
    spec_version: service.spec_version,
    spec: service.spec!.task_template,
    desired_state: delayMs > 0 || held ? 'READY' : 'RUNNING',
    status: { state: 'PENDING', timestamp: createdAt, message: 'pending task scheduling', err: '', container: null, health: '' },
    created_at: createdAt,
    start_after: delayMs > 0 ? new Date(nowMs + delayMs).toISOString() : '',
    schedule_error: '',
    restart_times: restartTimes,
    endpoint: service.spec!.endpoint_spec,
  };
}

/**
 * reconcileReplicated on a cluster: first releases the tasks of nodes that can no longer run
 * them, so their slots get new tasks elsewhere. A task whose node is down or removed is
 * orphaned (observed ORPHANED, desired SHUTDOWN): nothing will report on it, and when a down
 * node comes back its agent stops it. A task on a drained node is asked to shut down, and its
 * agent reports when it has. Neither counts as live again, so the service never settles with
 * more than its replicas.
 */
export function reconcileReplicatedOnNodes(service: Service__Output, tasks: Task__Output[], nodes: Node__Output[], nowMs: number, newSlots = Infinity): Plan {
  const nodeById = new Map(nodes.map((n) => [n.id, n]));
  const released = new Map<string, Task__Output>();
  for (const t of tasks) {
    if (!t.node_id || !wantsRunning(t.desired_state) || isTerminal(t.status!.state)) continue;
    const node = nodeById.get(t.node_id);
    if (!node || node.status?.state === 'NODE_DOWN') released.set(t.id, orphaned(t, node ? 'its node is down' : 'its node was removed', nowMs));
    else if (node.spec?.availability === 'drain') released.set(t.id, withDesired(t, 'SHUTDOWN'));
  }
  const plan = reconcileReplicated(service, released.size ? tasks.map((t) => released.get(t.id) ?? t) : tasks, nowMs, newSlots);
  // One transaction may not both change and delete a key: a released task the history drops just goes.
  const removed = new Set(plan.remove.map((t) => t.id));
  plan.update.unshift(...[...released.values()].filter((t) => !removed.has(t.id)));
  return plan;
}

function orphaned(task: Task__Output, why: string, nowMs: number): Task__Output {
  const status = { ...task.status!, state: 'ORPHANED' as const, timestamp: new Date(nowMs).toISOString(), message: `task orphaned: ${why}`, err: '' };
  return { ...task, desired_state: 'SHUTDOWN', status };
}
