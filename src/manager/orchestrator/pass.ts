import type { Node__Output } from '../../gen/shoal/v1/Node';
import type { Service__Output } from '../../gen/shoal/v1/Service';
import type { Task__Output } from '../../gen/shoal/v1/Task';
import type { Logger } from '../../common/logger';
import { FAILED_SERVICE_RETRY_MS, isConflict, messageOf, reportConvergence } from '../convergence-errors';
import type { Change, StoreCache } from '../store/cache';
import type { Op } from '../store/store';
import { MAX_REPLICAS } from '../validate';
import { isTerminal, rank } from '../../common/tasks';
import { reconcileGlobal } from './global';
import { reconcileOrphanedTasks, reconcileReplicatedOnNodes, type Plan } from './replicated';

export interface ServicePlans {
  /** Per service id, what to write; '' holds the tasks of services that no longer exist. */
  plans: Map<string, Plan>;
  /** Per service id, why it could not be planned. */
  failures: Map<string, string>;
}

/**
 * Slots filled from nothing per pass, over every service: a scale-up of 100,000 replicas planned,
 * encoded and written in one go held the manager's only thread for seconds (its etcd leases
 * lapsed), and left the scheduler nothing to place until it was all written.
 */
export const NEW_SLOTS_PER_PASS = 2000;

/**
 * Plans every service on its own, so that one whose plan throws, or whose stored replica count
 * is past the bound (stored before the bound, or written around the API), gets a failure and
 * the others are planned as usual. At most `newSlots` empty slots are filled, the services in
 * order; the plans of those left over wake at once. Pure.
 */
export function planServices(services: Service__Output[], tasks: Task__Output[], nodes: Node__Output[], nowMs: number, newSlots = Infinity): ServicePlans {
  const byService = new Map<string, Task__Output[]>(services.map((s) => [s.id, []]));
  const orphans: Task__Output[] = [];
  for (const t of tasks) (byService.get(t.service_id) ?? orphans).push(t);

  const result: ServicePlans = { plans: new Map(), failures: new Map() };
  let budget = newSlots;
  for (const s of services) {
    const replicas = s.spec?.mode?.replicated?.replicas ?? 0;
    if (replicas > MAX_REPLICAS) {
      result.failures.set(s.id, `its ${replicas} replicas are more than the ${MAX_REPLICAS} a service may have; scale it down`);
      continue;
    }
    const own = byService.get(s.id)!;
    try {
      const plan = s.spec!.mode!.global ? reconcileGlobal(s, nodes, own, nowMs) : reconcileReplicatedOnNodes(s, own, nodes, nowMs, budget);
      budget = Math.max(0, budget - plan.create.length);
      result.plans.set(s.id, plan);
    } catch (err) {
      result.failures.set(s.id, `planning its tasks failed: ${messageOf(err)}`);
    }
  }
  result.plans.set('', reconcileOrphanedTasks(orphans));
  return result;
}

// Creates go first: a restart's new task exists before the ended one is set to Shutdown, so an
// ended task set to Shutdown with nothing newer in its slot is never a restart half written.
// The service's update status goes with its tasks, compare-and-swap on the service as read: a
// plan made from a service the user has changed since is refused whole, and made again.
function opsOf(plan: Plan): Op[] {
  return [
    ...(plan.service ? [{ type: 'update', kind: 'services', obj: plan.service } as Op] : []),
    ...plan.create.map((obj): Op => ({ type: 'create', kind: 'tasks', obj })),
    ...plan.update.map((obj): Op => ({ type: 'update', kind: 'tasks', obj })),
    ...plan.remove.map((t): Op => ({ type: 'delete', kind: 'tasks', id: t.id, version: t.version })),
  ];
}

/** However few services change, every service is planned at least this often. */
export const FULL_PASS_MS = 10_000;

/**
 * What of a task the orchestrator's plans read: its slot, version and desired state, its node, and
 * whether it is yet to be placed, on its node, running, or ended (and how). A change that leaves
 * this as it was (a task reported preparing, a new message) cannot change a plan; a pass over the
 * service's tasks for each of them was most of the orchestrator's work in a scale-up.
 */
function orchestrationRole(t: Task__Output): string {
  const state = t.status!.state;
  const phase = state === 'RUNNING' || isTerminal(state) ? state : rank(state) < rank('ASSIGNED') ? 'unplaced' : 'placed';
  return `${t.desired_state} ${t.spec_version} ${t.slot} ${t.node_id} ${phase}`;
}

/** Whether a change of kind 'tasks' may change what the orchestrator plans for the task's service. */
export function changesOrchestration(change: Change | undefined): boolean {
  const [before, after] = [change?.before, change?.after] as (Task__Output | undefined)[];
  return !before || !after || orchestrationRole(before) !== orchestrationRole(after);
}

/**
 * Which services the next orchestrator pass plans: those whose spec or tasks changed, those
 * whose plan asked to be woken and whose time has come, or (after a node changed, a reload, a
 * failure, or FULL_PASS_MS) every one. A task's status report then costs a pass over its own
 * service, not over every task of the cluster.
 */
export class ServiceScope {
  private ids = new Set<string>();
  private all = true;
  private lastFull = -Infinity;
  private readonly wakes = new Map<string, number>();

  mark(serviceId: string): void {
    this.ids.add(serviceId);
  }

  markAll(): void {
    this.all = true;
  }

  /** Plan this service again at wakeAt (ms), even if nothing of it changes by then. */
  wakeAt(serviceId: string, wakeAt: number): void {
    this.wakes.set(serviceId, Math.min(wakeAt, this.wakes.get(serviceId) ?? Infinity));
  }

  /** The scope of the pass about to run; changes from now on go to the next one. */
  take(nowMs: number): Set<string> | 'all' {
    const ids = this.ids;
    this.ids = new Set();
    if (this.all || nowMs - this.lastFull >= FULL_PASS_MS) {
      this.all = false;
      this.lastFull = nowMs;
      this.wakes.clear();
      return 'all';
    }
    for (const [id, at] of this.wakes) {
      if (at > nowMs) continue;
      ids.add(id);
      this.wakes.delete(id);
    }
    return ids;
  }
}

/**
 * One orchestrator pass over the services in scope (every one, or those that changed), read
 * from the cache once it shows this loop's own writes: returns when it next needs to run, if it
 * has a deadline. Each service's writes are committed on their own, so a service whose plan or
 * writes fail holds back no other; its failure is logged and recorded on it for `service ps`.
 */
export async function orchestrate(cache: StoreCache, log: Logger, scope = new ServiceScope()): Promise<number | undefined> {
  await cache.settled();
  const now = Date.now();
  const scoped = scope.take(now);
  const services = scoped === 'all' ? cache.services() : [...scoped].flatMap((id) => cache.get<Service__Output>('services', id) ?? []);
  // A removed service's id is in scope too: its tasks are planned as orphans.
  const tasks = scoped === 'all' ? cache.tasks() : [...scoped].flatMap((id) => cache.tasksOfService(id));
  const { plans, failures } = planServices(services, tasks, cache.nodes(), now, NEW_SLOTS_PER_PASS);
  let wakeAt: number | undefined;
  let retry = failures.size > 0;
  for (const [serviceId, plan] of plans) {
    if (plan.wakeAt !== undefined) {
      wakeAt = Math.min(wakeAt ?? Infinity, plan.wakeAt);
      scope.wakeAt(serviceId, plan.wakeAt);
    }
    try {
      await cache.commit(opsOf(plan));
    } catch (err) {
      retry = true;
      if (isConflict(err)) log.debug({ err, serviceId }, 'a write conflicted with a newer change; retrying');
      else if (serviceId) failures.set(serviceId, `writing its tasks failed: ${messageOf(err)}`);
      else log.warn({ err }, 'removing the tasks of removed services failed');
    }
  }
  if (retry) scope.markAll();
  await reportConvergence(cache, 'orchestrator', services, failures, log);
  return retry ? Math.min(wakeAt ?? Infinity, now + FAILED_SERVICE_RETRY_MS) : wakeAt;
}
