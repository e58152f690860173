import type { Network__Output } from '../../gen/shoal/v1/Network';
import type { ServiceVips__Output } from '../../gen/shoal/v1/ServiceVips';
import type { TaskNetworks__Output } from '../../gen/shoal/v1/TaskNetworks';
import type { Logger } from '../../common/logger';
import { FAILED_SERVICE_RETRY_MS, isConflict, reportConvergence } from '../convergence-errors';
import type { StoreCache } from '../store/cache';
import type { Kind, Op } from '../store/store';
import { planAddresses, type RecordChanges } from './addresses';

function opsOf<T extends { id: string; version: number }>(kind: Kind, c: RecordChanges<T>): Op[] {
  return [
    ...c.remove.map((r): Op => ({ type: 'delete', kind, id: r.id, version: r.version })),
    ...c.create.map((obj): Op => ({ type: 'create', kind, obj })),
    ...c.update.map((obj): Op => ({ type: 'update', kind, obj })),
  ];
}

/**
 * One allocator pass, read from the cache once it shows this loop's own writes: gives tasks and
 * services their addresses and takes back those no longer held, every write a compare-and-swap
 * (only the leader writes these records, so its settled cache holds every address in use).
 */
export async function allocate(cache: StoreCache, log: Logger): Promise<number | undefined> {
  await cache.settled();
  const services = cache.services();
  const plan = planAddresses({
    networks: cache.list<Network__Output>('networks'),
    services,
    tasks: cache.tasks(),
    taskNetworks: cache.list<TaskNetworks__Output>('task-networks'),
    serviceVips: cache.list<ServiceVips__Output>('service-vips'),
  });
  const ops = [...opsOf('task-networks', plan.taskNetworks), ...opsOf('service-vips', plan.serviceVips)];
  let retry = plan.failures.size > 0;
  if (ops.length) {
    try {
      await cache.commit(ops);
      log.debug({ writes: ops.length }, 'addresses allocated and released');
    } catch (err) {
      retry = true;
      if (isConflict(err)) log.debug({ err }, 'an address write conflicted with a newer change; retrying');
      else log.warn({ err }, 'writing addresses failed; retrying');
    }
  }
  await reportConvergence(cache, 'allocator', services, plan.failures, log);
  return retry ? Date.now() + FAILED_SERVICE_RETRY_MS : undefined;
}
