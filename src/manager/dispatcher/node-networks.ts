import type { Network__Output } from '../../gen/shoal/v1/Network';
import type { NodeNetworks__Output } from '../../gen/shoal/v1/NodeNetworks';
import type { ServiceVips__Output } from '../../gen/shoal/v1/ServiceVips';
import type { TaskNetworks__Output } from '../../gen/shoal/v1/TaskNetworks';
import type { Service__Output } from '../../gen/shoal/v1/Service';
import type { Task__Output } from '../../gen/shoal/v1/Task';
import { isTerminal, taskName } from '../../common/tasks';

interface Member {
  taskId: string;
  serviceId: string;
  nodeId: string;
  ip: string;
  /** The name its containers' peers resolve it by: "api.1.<task id>". */
  name: string;
  /** Running and meant to: an endpoint of its service's VIP. */
  serving: boolean;
}

/** The cluster's overlay state indexed by network, built once per push and read for every node. */
export interface NetworkIndex {
  networks: Map<string, Network__Output>;
  attachments: Map<string, TaskNetworks__Output>;
  members: Map<string, Member[]>;
  vips: Map<string, { serviceId: string; serviceName: string; vip: string }[]>;
  nodeAddrs: Map<string, string>;
}

const bare = (address: string) => address.split('/')[0];

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

export function indexNetworks(
  networks: Network__Output[],
  attachments: TaskNetworks__Output[],
  vips: ServiceVips__Output[],
  tasks: Task__Output[],
  nodeAddrs: Map<string, string>,
  services: Service__Output[],
): NetworkIndex {
  const index: NetworkIndex = {
    networks: new Map(networks.map((n) => [n.id, n])),
    attachments: new Map(attachments.map((a) => [a.id, a])),
    members: new Map(),
    vips: new Map(),
    nodeAddrs,
  };
  for (const t of tasks) {
    const a = index.attachments.get(t.id);
    if (!a || !t.node_id || isTerminal(t.status?.state ?? 'NEW')) continue;
    const serving = t.desired_state === 'RUNNING' && t.status?.state === 'RUNNING';
    const name = `${taskName(t)}.${t.id}`;
    for (const n of a.networks) push(index.members, n.network_id, { taskId: t.id, serviceId: t.service_id, nodeId: t.node_id, ip: bare(n.address), name, serving });
  }
  const names = new Map(services.map((s) => [s.id, s.spec?.name ?? '']));
  for (const v of vips) {
    // "" for a service removed whose VIPs are not released yet: still balanced, no longer named.
    const serviceName = names.get(v.id) ?? '';
    for (const n of v.virtual_ips) push(index.vips, n.network_id, { serviceId: v.id, serviceName, vip: bare(n.address) });
  }
  return index;
}

/**
 * Whether a task can go to its node: one that joins networks only once IPAM has given it an
 * address on each, since its container is made with them. An ended task needs none.
 */
export function addressed(t: Task__Output, index: NetworkIndex): boolean {
  const wanted = t.spec?.networks ?? [];
  if (!wanted.length || isTerminal(t.status?.state ?? 'NEW')) return true;
  const held = index.attachments.get(t.id)?.networks ?? [];
  return wanted.every((n) => held.some((a) => a.network_id === n.target));
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * What a node must program for its tasks (those it is sent): the networks they are on, their
 * addresses, every task of those networks on other nodes, every VIP on them with the running
 * tasks behind it, and the name of every task on them. Sorted, so that an unchanged state
 * compares equal. Pure.
 */
export function nodeNetworks(nodeId: string, tasks: Task__Output[], index: NetworkIndex): NodeNetworks__Output {
  const attachments = tasks
    .map((t) => index.attachments.get(t.id))
    .filter((a): a is TaskNetworks__Output => !!a)
    .sort((a, b) => byText(a.id, b.id));
  const networkIds = [...new Set(attachments.flatMap((a) => a.networks.map((n) => n.network_id)))].filter((id) => index.networks.has(id)).sort(byText);
  const result: NodeNetworks__Output = { networks: networkIds.map((id) => index.networks.get(id)!), attachments, peers: [], services: [], task_names: [], ingress: null, published: [] };
  for (const network_id of networkIds) {
    const members = index.members.get(network_id) ?? [];
    for (const m of members) {
      const node_addr = index.nodeAddrs.get(m.nodeId);
      if (m.nodeId !== nodeId && node_addr) result.peers.push({ network_id, ip: m.ip, node_addr });
      result.task_names.push({ network_id, name: m.name, ip: m.ip });
    }
    for (const { serviceId, serviceName, vip } of index.vips.get(network_id) ?? []) {
      const endpoints = members.filter((m) => m.serviceId === serviceId && m.serving).map((m) => m.ip);
      result.services.push({ service_id: serviceId, network_id, vip, endpoints: endpoints.sort(byText), service_name: serviceName });
    }
  }
  result.peers.sort((a, b) => byText(a.network_id, b.network_id) || byText(a.ip, b.ip));
  result.services.sort((a, b) => byText(a.network_id, b.network_id) || byText(a.service_id, b.service_id));
  result.task_names.sort((a, b) => byText(a.network_id, b.network_id) || byText(a.name, b.name));
  return result;
}
