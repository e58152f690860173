import type { Network__Output } from '../gen/shoal/v1/Network';
import type { NetworkAttachmentConfig__Output } from '../gen/shoal/v1/NetworkAttachmentConfig';
import type { NetworkSpec, NetworkSpec__Output } from '../gen/shoal/v1/NetworkSpec';
import type { Service__Output } from '../gen/shoal/v1/Service';
import type { ServiceVips__Output } from '../gen/shoal/v1/ServiceVips';
import type { TaskNetworks__Output } from '../gen/shoal/v1/TaskNetworks';
import type { Task__Output } from '../gen/shoal/v1/Task';
import { alreadyExists, invalidArgument, notFound } from '../common/errors';
import { isTerminal, newId } from '../common/tasks';
import { Ipam, validateSubnet } from '../network/ipam';
import type { Op, Versioned } from './store/store';
import { checkLabels } from './nodes';
import { NAME_PATTERN } from './validate';

const DRIVERS = ['overlay'];

const fail = (path: string, rule: string): never => {
  throw invalidArgument(`invalid network spec: ${path}: ${rule}`);
};

/** Checks a network spec as `network create` sent it and returns it complete (driver filled, subnet canonical). */
export function validateNetworkSpec(spec: NetworkSpec | null | undefined): NetworkSpec__Output {
  if (!spec) return fail('spec', 'required');
  const name = spec.name ?? '';
  if (!name) fail('name', 'must not be empty');
  if (name.length > 63) fail('name', 'must be at most 63 characters');
  if (!NAME_PATTERN.test(name)) fail('name', "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'");
  if (name === INGRESS_NAME) fail('name', `"${INGRESS_NAME}" is the routing mesh's network, which shoal makes itself`);
  const driver = spec.driver || 'overlay';
  if (!DRIVERS.includes(driver)) fail('driver', `must be ${DRIVERS.join(' or ')}, not "${driver}"`);
  let subnet = '';
  if (spec.subnet) {
    try {
      subnet = validateSubnet(spec.subnet);
    } catch (err) {
      fail('subnet', (err as Error).message.replace(/^subnet /, ''));
    }
  }
  const labels = { ...spec.labels };
  checkLabels(labels, 'network');
  return { name, driver, subnet, labels, ingress: false };
}

export const INGRESS_NAME = 'ingress';

/** The routing mesh's network, once shoal has made it (the first time a service published a port). */
export const ingressNetwork = (networks: Network__Output[]): Network__Output | undefined => networks.find((n) => n.spec?.ingress);

/**
 * Every network create updates this object with a compare-and-swap, so two creates that planned
 * from the same networks cannot both commit: the second plans again and sees the first's subnet,
 * VNI and name. (A remove only frees, so it need not take part.)
 */
export interface NetworkAllocations extends Versioned {
  updated_at: string;
}
export const NETWORK_ALLOCATIONS_ID = 'networks';

/** The network with its subnet and VNI allocated around the stored ones, and the writes that create it. Pure. */
export function planNetworkCreate(
  spec: NetworkSpec__Output,
  networks: Network__Output[],
  lock: NetworkAllocations | null | undefined,
  ts: string,
): { network: Network__Output; ops: Op[] } {
  if (networks.some((n) => n.spec!.name === spec.name)) throw alreadyExists(`a network named "${spec.name}" already exists`);
  const ipam = new Ipam();
  for (const n of networks) ipam.restoreNetwork(n.spec!.name, n.subnet, n.vni);
  const network: Network__Output = { id: newId(), version: 0, spec, ...ipam.allocateNetwork(spec.name, spec.subnet || undefined), created_at: ts };
  const marker: NetworkAllocations = { id: NETWORK_ALLOCATIONS_ID, version: lock?.version ?? 0, updated_at: ts };
  return {
    network,
    ops: [
      { type: lock ? 'update' : 'create', kind: 'network-ipam', obj: marker },
      { type: 'create', kind: 'networks', obj: network },
    ],
  };
}

/** A network by exact id, then exact name, then unique id prefix, as Docker resolves them. */
export function resolveNetwork(networks: Network__Output[], ref: string): Network__Output {
  if (!ref) throw invalidArgument('a network name or ID is required');
  const found = networks.find((n) => n.id === ref) ?? networks.find((n) => n.spec!.name === ref);
  if (found) return found;
  const byPrefix = networks.filter((n) => n.id.startsWith(ref));
  if (byPrefix.length === 1) return byPrefix[0];
  if (byPrefix.length > 1) throw invalidArgument(`network ID prefix "${ref}" is ambiguous: it matches ${byPrefix.length} networks`);
  throw notFound(`network ${ref} not found`);
}

export interface NetworkHolders {
  services: Pick<Service__Output, 'id' | 'spec'>[];
  vips: ServiceVips__Output[];
  tasks: Pick<Task__Output, 'id' | 'status'>[];
  attachments: TaskNetworks__Output[];
}

/**
 * The stored networks a service spec names, in its order, each target resolved as Docker does
 * (id, name, id prefix). Refuses an unknown network and one named twice (say by name and by id),
 * naming the field.
 */
export function resolveServiceNetworks(targets: NetworkAttachmentConfig__Output[], networks: Network__Output[]): Network__Output[] {
  const ids = new Set<string>();
  return targets.map((n, i) => {
    const fail = (rule: string) => invalidArgument(`invalid service spec: task_template.networks[${i}].target: ${rule}`);
    let network: Network__Output;
    try {
      network = resolveNetwork(networks, n.target);
    } catch (err) {
      throw fail((err as Error).message);
    }
    if (network.spec!.ingress) throw fail(`the ${INGRESS_NAME} network cannot be joined; publish a port (--publish) to be reached through it`);
    if (ids.has(network.id)) throw fail(`network ${network.spec!.name} is listed twice`);
    ids.add(network.id);
    return network;
  });
}

/** The ids of the networks a service's tasks join. */
export const serviceNetworkIds = (s: Pick<Service__Output, 'spec'>): string[] => (s.spec?.task_template?.networks ?? []).map((n) => n.target);

/**
 * What still uses the network: services that name it or hold a VIP on it, tasks by their
 * attachment until they have ended (a task's record may outlive the task; then it holds nothing).
 */
export function networkUsers(networkId: string, state: NetworkHolders): string[] {
  const onIt = (list: { network_id: string }[]) => list.some((a) => a.network_id === networkId);
  const names = new Map(state.services.map((s) => [s.id, s.spec?.name ?? s.id]));
  const serviceIds = new Set([
    ...state.services.filter((s) => serviceNetworkIds(s).includes(networkId)).map((s) => s.id),
    ...state.vips.filter((v) => onIt(v.virtual_ips)).map((v) => v.id),
  ]);
  const users = [...serviceIds].map((id) => `service ${names.get(id) ?? id}`);
  const live = new Set(state.tasks.filter((t) => !isTerminal(t.status?.state ?? 'NEW')).map((t) => t.id));
  for (const a of state.attachments) if (live.has(a.id) && onIt(a.networks)) users.push(`task ${a.id}`);
  return users;
}
