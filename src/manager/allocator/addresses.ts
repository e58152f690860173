import type { Network__Output } from '../../gen/shoal/v1/Network';
import type { NodeIngress__Output } from '../../gen/shoal/v1/NodeIngress';
import type { Node__Output } from '../../gen/shoal/v1/Node';
import type { NetworkAttachment__Output } from '../../gen/shoal/v1/NetworkAttachment';
import type { Service__Output } from '../../gen/shoal/v1/Service';
import type { ServiceVips__Output } from '../../gen/shoal/v1/ServiceVips';
import type { TaskNetworks__Output } from '../../gen/shoal/v1/TaskNetworks';
import type { Task__Output } from '../../gen/shoal/v1/Task';
import { isTerminal, publishesPorts, wantsRunning } from '../../common/tasks';
import { Ipam, parseIp } from '../../network/ipam';
import { ingressNetwork, serviceNetworkIds } from '../networks';

export interface AddressState {
  networks: Network__Output[];
  services: Service__Output[];
  tasks: Task__Output[];
  taskNetworks: TaskNetworks__Output[];
  serviceVips: ServiceVips__Output[];
  nodes: Pick<Node__Output, 'id'>[];
  nodeIngress: NodeIngress__Output[];
}

/** Writes of one kind of record: new ones, changed ones (CAS on the version read), and gone ones. */
export interface RecordChanges<T> {
  create: T[];
  update: T[];
  remove: T[];
}

export interface AddressPlan {
  taskNetworks: RecordChanges<TaskNetworks__Output>;
  serviceVips: RecordChanges<ServiceVips__Output>;
  nodeIngress: RecordChanges<NodeIngress__Output>;
  /** Per service id, why some of its tasks or VIPs got no address (a network full). */
  failures: Map<string, string>;
}

/** An address (task attachment or VIP) on a network; both record kinds hold a list of these. */
type Held = Pick<NetworkAttachment__Output, 'network_id' | 'address'>;

interface Holder {
  id: string;
  serviceId: string;
  /** The networks it must have an address on, in order; empty: none (its record goes). */
  wanted: string[];
  /** It may get new addresses (a task that is to run); otherwise it only keeps what it has. */
  grows: boolean;
  held: Held[];
  /** The stored record's version and addresses, if it has one. */
  record?: { version: number; addresses: Held[] };
}

/**
 * What IPAM must write so that every task that has not ended holds one address on each network of
 * its spec (and on the ingress network when it publishes ports), every service one VIP on each of
 * its networks, and every node one address on the ingress network once there is one: addresses of ended or removed
 * tasks, of removed services and of networks left are released. Every address still held is
 * taken back first, so a new one never repeats one in use. Pure.
 */
export function planAddresses(state: AddressState): AddressPlan {
  // No network and no address held: nothing to hand out or take back, however many tasks there are.
  if (!state.networks.length && !state.taskNetworks.length && !state.serviceVips.length && !state.nodeIngress.length) {
    return { taskNetworks: changes(), serviceVips: changes(), nodeIngress: changes(), failures: new Map() };
  }
  const ipam = new Ipam();
  const networks = new Set<string>();
  for (const n of state.networks) {
    try {
      ipam.restoreNetwork(n.id, n.subnet, n.vni);
      networks.add(n.id);
    } catch {
      // A stored network IPAM cannot take back (written around the API) gets no addresses.
    }
  }
  const existing = (ids: string[]) => ids.filter((id) => networks.has(id));

  const ingress = ingressNetwork(state.networks.filter((n) => networks.has(n.id)));
  const taskHolders = new Map<string, Holder>();
  const vipHolders = new Map<string, Holder>();
  const nodeHolders = new Map<string, Holder>();
  for (const t of state.tasks) {
    if (isTerminal(t.status?.state ?? 'NEW')) continue;
    const wanted = existing([...(t.spec?.networks ?? []).map((n) => n.target), ...(ingress && publishesPorts(t.endpoint) ? [ingress.id] : [])]);
    taskHolders.set(t.id, { id: t.id, serviceId: t.service_id, wanted, grows: wantsRunning(t.desired_state), held: [] });
  }
  // A dnsrr service is reached at its tasks' own addresses: it holds no VIP, and gives back one it had.
  for (const s of state.services) {
    const wanted = s.spec?.endpoint_spec?.mode === 'dnsrr' ? [] : existing(serviceNetworkIds(s));
    vipHolders.set(s.id, { id: s.id, serviceId: s.id, wanted, grows: true, held: [] });
  }
  for (const n of state.nodes) nodeHolders.set(n.id, { id: n.id, serviceId: '', wanted: ingress ? [ingress.id] : [], grows: true, held: [] });

  const plan: AddressPlan = { taskNetworks: changes(), serviceVips: changes(), nodeIngress: changes(), failures: new Map() };
  // Taken back first: a record of a task or service that is gone holds nothing.
  const restore = (holders: Map<string, Holder>, id: string, version: number, addresses: Held[]): boolean => {
    const h = holders.get(id);
    if (!h) return false;
    h.record = { version, addresses };
    for (const a of addresses) {
      if (!h.wanted.includes(a.network_id) || h.held.some((x) => x.network_id === a.network_id)) continue;
      try {
        ipam.restoreAddress(a.network_id, a.address);
        h.held.push({ network_id: a.network_id, address: a.address });
      } catch {
        // Held twice or malformed (written around the API): it gets a new one below.
      }
    }
    return true;
  };
  for (const r of state.taskNetworks) if (!restore(taskHolders, r.id, r.version, r.networks)) plan.taskNetworks.remove.push(r);
  for (const r of state.serviceVips) if (!restore(vipHolders, r.id, r.version, r.virtual_ips)) plan.serviceVips.remove.push(r);
  for (const r of state.nodeIngress) if (!restore(nodeHolders, r.id, r.version, r.address ? [r.address] : [])) plan.nodeIngress.remove.push(r);
  for (const [networkId, address] of newestAddresses(state.tasks, taskHolders)) ipam.resumeAfter(networkId, address);

  const settle = (h: Holder): Held[] => {
    const out: Held[] = [];
    for (const network_id of h.wanted) {
      const held = h.held.find((a) => a.network_id === network_id);
      if (held) out.push(held);
      else if (h.grows) {
        try {
          out.push({ network_id, address: ipam.allocateAddress(network_id) });
        } catch (err) {
          // A node's own address is the mesh's, not a service's: its tasks' addresses fail next.
          if (h.serviceId) plan.failures.set(h.serviceId, `no address for it: ${(err as Error).message}`);
        }
      }
    }
    return out;
  };
  // VIPs first: on a network about full, a service's tasks are of no use without its VIP.
  for (const h of vipHolders.values()) {
    const virtual_ips = settle(h);
    decide(plan.serviceVips, h, virtual_ips, (version) => ({ id: h.id, version, virtual_ips }));
  }
  // Then nodes: a node without its ingress address cannot carry the routing mesh at all.
  for (const h of nodeHolders.values()) {
    const [address = null] = settle(h);
    decide(plan.nodeIngress, h, address ? [address] : [], (version) => ({ id: h.id, version, address }));
  }
  for (const h of taskHolders.values()) {
    const networks = settle(h);
    decide(plan.taskNetworks, h, networks, (version) => ({ id: h.id, version, networks }));
  }
  return plan;
}

/**
 * Each network's address held by its newest task (by creation, then address): new addresses
 * follow it, round the subnet, as if one IPAM had handed them all out.
 */
function newestAddresses(tasks: Task__Output[], holders: Map<string, Holder>): Map<string, string> {
  const newest = new Map<string, { createdAt: string; address: string }>();
  for (const t of tasks) {
    for (const a of holders.get(t.id)?.held ?? []) {
      const seen = newest.get(a.network_id);
      const later = !seen || t.created_at > seen.createdAt || (t.created_at === seen.createdAt && ipOrder(a.address) > ipOrder(seen.address));
      if (later) newest.set(a.network_id, { createdAt: t.created_at, address: a.address });
    }
  }
  return new Map([...newest].map(([id, n]) => [id, n.address]));
}

const ipOrder = (address: string) => parseIp(address.split('/')[0]) ?? 0;

const changes = <T>(): RecordChanges<T> => ({ create: [], update: [], remove: [] });

const same = (a: Held[], b: Held[] | undefined) =>
  !!b && a.length === b.length && a.every((x, i) => x.network_id === b[i].network_id && x.address === b[i].address);

function decide<T extends { id: string; version: number }>(out: RecordChanges<T>, h: Holder, addresses: Held[], make: (version: number) => T): void {
  if (!h.record) {
    if (addresses.length) out.create.push(make(0));
    return;
  }
  if (!addresses.length) out.remove.push(make(h.record.version));
  else if (!same(addresses, h.record.addresses)) out.update.push(make(h.record.version));
}
