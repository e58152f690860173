import type { Node__Output } from '../../gen/shoal/v1/Node';
import type { Service__Output } from '../../gen/shoal/v1/Service';
import type { Task__Output } from '../../gen/shoal/v1/Task';
import type { Logger } from '../../common/logger';
import { FAILED_SERVICE_RETRY_MS, isConflict, messageOf, reportConvergence } from '../convergence-errors';
import type { StoreCache } from '../store/cache';
import type { Op } from '../store/store';
import { MAX_REPLICAS } from '../validate';
import { reconcileGlobal } from './global';
import { reconcileOrphanedTasks, reconcileReplicatedOnNodes, type Plan } from './replicated';

export interface ServicePlans {
  /** Per service id, what to write; '' holds the tasks of services that no longer exist. */
  plans: Map<string, Plan>;
  /** Per service id, why it could not be planned. */
  failures: Map<string, string>;
}

/**
 * Plans every service on its own, so that one whose plan throws, or whose stored replica count
 * is past the bound (stored before the bound, or written around the API), gets a failure and
 * the others are planned as usual. Pure.
 */
export function planServices(services: Service__Output[], tasks: Task__Output[], nodes: Node__Output[], nowMs: number): ServicePlans {
  const byService = new Map<string, Task__Output[]>(services.map((s) => [s.id, []]));
  const orphans: Task__Output[] = [];
  for (const t of tasks) (byService.get(t.service_id) ?? orphans).push(t);

  const result: ServicePlans = { plans: new Map(), failures: new Map() };
  for (const s of services) {
    const replicas = s.spec?.mode?.replicated?.replicas ?? 0;
    if (replicas > MAX_REPLICAS) {
      result.failures.set(s.id, `its ${replicas} replicas are more than the ${MAX_REPLICAS} a service may have; scale it down`);
      continue;
    }
    const own = byService.get(s.id)!;
    try {
      result.plans.set(s.id, s.spec!.mode!.global ? reconcileGlobal(s, nodes, own, nowMs) : reconcileReplicatedOnNodes(s, own, nodes, nowMs));
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

/**
 * One orchestrator pass over every service, read from the cache once it shows this loop's own
 * writes: returns when it next needs to run, if it has a deadline. Each service's writes are
 * committed on their own, so a service whose plan or writes fail holds back no other; its
 * failure is logged and recorded on it for `service ps`.
 */
export async function orchestrate(cache: StoreCache, log: Logger): Promise<number | undefined> {
  await cache.settled();
  const services = cache.services();
  const now = Date.now();
  const { plans, failures } = planServices(services, cache.tasks(), cache.nodes(), now);
  let wakeAt: number | undefined;
  let retry = failures.size > 0;
  for (const [serviceId, plan] of plans) {
    if (plan.wakeAt !== undefined) wakeAt = Math.min(wakeAt ?? Infinity, plan.wakeAt);
    try {
      await cache.commit(opsOf(plan));
    } catch (err) {
      retry = true;
      if (isConflict(err)) log.debug({ err, serviceId }, 'a write conflicted with a newer change; retrying');
      else if (serviceId) failures.set(serviceId, `writing its tasks failed: ${messageOf(err)}`);
      else log.warn({ err }, 'removing the tasks of removed services failed');
    }
  }
  await reportConvergence(cache, 'orchestrator', services, failures, log);
  return retry ? Math.min(wakeAt ?? Infinity, now + FAILED_SERVICE_RETRY_MS) : wakeAt;
}
