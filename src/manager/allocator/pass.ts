import type { Network__Output } from '../../gen/shoal/v1/Network';
import type { NodeIngress__Output } from '../../gen/shoal/v1/NodeIngress';
import type { Service__Output } from '../../gen/shoal/v1/Service';
import type { ServiceVips__Output } from '../../gen/shoal/v1/ServiceVips';
import type { TaskNetworks__Output } from '../../gen/shoal/v1/TaskNetworks';
import type { Logger } from '../../common/logger';
import { FAILED_SERVICE_RETRY_MS, isConflict, reportConvergence } from '../convergence-errors';
import type { StoreCache } from '../store/cache';
import type { Kind, Op } from '../store/store';
import { now, publishesPorts } from '../../common/tasks';
import { INGRESS_NAME, NETWORK_ALLOCATIONS_ID, ingressNetwork, planNetworkCreate, type NetworkAllocations } from '../networks';
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
  const networks = cache.list<Network__Output>('networks');
  const mesh = ingressOps(networks, services, cache.get<NetworkAllocations>('network-ipam', NETWORK_ALLOCATIONS_ID));
  const plan = planAddresses({
    networks,
    services,
    tasks: cache.tasks(),
    taskNetworks: cache.list<TaskNetworks__Output>('task-networks'),
    serviceVips: cache.list<ServiceVips__Output>('service-vips'),
    nodes: cache.nodes(),
    nodeIngress: cache.list<NodeIngress__Output>('node-ingress'),
  });
  // The ingress network first, alone: its addresses are planned on the pass its write triggers.
  const ops = mesh.length
    ? mesh
    : [...opsOf('task-networks', plan.taskNetworks), ...opsOf('service-vips', plan.serviceVips), ...opsOf('node-ingress', plan.nodeIngress)];
  let retry = plan.failures.size > 0;
  if (ops.length) {
    try {
      await cache.commit(ops);
      if (mesh.length) log.info('made the ingress network: a service publishes ports');
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

/** The writes that make the ingress network, when a service publishes a port and there is none yet. */
function ingressOps(networks: Network__Output[], services: Service__Output[], lock: NetworkAllocations | undefined): Op[] {
  if (ingressNetwork(networks) || !services.some((s) => publishesPorts(s.spec?.endpoint_spec))) return [];
  const spec = { name: INGRESS_NAME, driver: 'overlay', subnet: '', labels: {}, ingress: true };
  return planNetworkCreate(spec, networks, lock, now()).ops;
}
