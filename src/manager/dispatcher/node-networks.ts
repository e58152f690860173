import type { Network__Output } from '../../gen/shoal/v1/Network';
import type { NodeIngress__Output } from '../../gen/shoal/v1/NodeIngress';
import type { NodeNetworks__Output } from '../../gen/shoal/v1/NodeNetworks';
import type { PublishedPort__Output } from '../../gen/shoal/v1/PublishedPort';
import type { ServiceVips__Output } from '../../gen/shoal/v1/ServiceVips';
import type { TaskNetworks__Output } from '../../gen/shoal/v1/TaskNetworks';
import type { Service__Output } from '../../gen/shoal/v1/Service';
import type { Task__Output } from '../../gen/shoal/v1/Task';
import { isTerminal, publishesPorts, taskName } from '../../common/tasks';
import { ingressNetwork, serviceNetworkIds } from '../networks';

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
  /** Per network, its services, each with its VIP there ("" for a dnsrr service). */
  vips: Map<string, { serviceId: string; serviceName: string; vip: string }[]>;
  nodeAddrs: Map<string, string>;
  /** The routing mesh, once the ingress network exists. */
  ingress?: {
    network: Network__Output;
    /** Each node's own address on it. */
    nodes: Map<string, string>;
    /** Every ingress-mode port of the cluster: every node with an address on the network answers on them. */
    ports: { serviceId: string; protocol: string; published: number; target: number }[];
  };
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
  nodeIngress: NodeIngress__Output[] = [],
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
  const ingress = ingressNetwork(networks);
  if (ingress) {
    index.ingress = {
      network: ingress,
      nodes: new Map(nodeIngress.filter((r) => r.address?.network_id === ingress.id).map((r) => [r.id, bare(r.address!.address)])),
      ports: services.flatMap((s) =>
        (s.spec?.endpoint_spec?.ports ?? [])
          .filter((p) => p.publish_mode === 'ingress' && p.published_port > 0)
          .map((p) => ({ serviceId: s.id, protocol: p.protocol, published: p.published_port, target: p.target_port })),
      ),
    };
  }
  const names = new Map(services.map((s) => [s.id, s.spec?.name ?? '']));
  // A dnsrr service's name resolves to its tasks: it gets an entry with no VIP on each of its
  // networks, and a VIP it still holds from before a switch to dnsrr is no longer resolved.
  const dnsrr = services.filter((s) => s.spec?.endpoint_spec?.mode === 'dnsrr');
  const noVip = new Set(dnsrr.map((s) => s.id));
  for (const v of vips) {
    if (noVip.has(v.id)) continue;
    // "" for a service removed whose VIPs are not released yet: still balanced, no longer named.
    const serviceName = names.get(v.id) ?? '';
    for (const n of v.virtual_ips) push(index.vips, n.network_id, { serviceId: v.id, serviceName, vip: bare(n.address) });
  }
  for (const s of dnsrr) {
    for (const id of serviceNetworkIds(s)) if (index.networks.has(id)) push(index.vips, id, { serviceId: s.id, serviceName: s.spec!.name, vip: '' });
  }
  return index;
}

/**
 * Whether a task can go to its node: one that joins networks (the ingress network too, when it
 * publishes ports) only once IPAM has given it an address on each, since its container is made
 * with them. An ended task needs none.
 */
export function addressed(t: Task__Output, index: NetworkIndex): boolean {
  const wanted = (t.spec?.networks ?? []).map((n) => n.target);
  if (publishesPorts(t.endpoint)) wanted.push(index.ingress?.network.id ?? 'ingress');
  if (!wanted.length || isTerminal(t.status?.state ?? 'NEW')) return true;
  const held = index.attachments.get(t.id)?.networks ?? [];
  return wanted.every((id) => held.some((a) => a.network_id === id));
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * What a node must program for its tasks (those it is sent): the networks they are on, their
 * addresses, every task of those networks on other nodes, every VIP on them with the running
 * tasks behind it, and the name of every task on them. While a service publishes a port in
 * ingress mode, every node with an ingress address carries the ingress network too, with the
 * other nodes' addresses as peers, and answers on the published ports. Sorted, so that an
 * unchanged state compares equal. Pure.
 */
export function nodeNetworks(nodeId: string, tasks: Task__Output[], index: NetworkIndex): NodeNetworks__Output {
  const attachments = tasks
    .map((t) => index.attachments.get(t.id))
    .filter((a): a is TaskNetworks__Output => !!a)
    .sort((a, b) => byText(a.id, b.id));
  const mesh = index.ingress;
  const ownIngress = mesh?.nodes.get(nodeId);
  const carried = new Set(attachments.flatMap((a) => a.networks.map((n) => n.network_id)));
  if (mesh && ownIngress && mesh.ports.length) carried.add(mesh.network.id);
  const networkIds = [...carried].filter((id) => index.networks.has(id)).sort(byText);
  const result: NodeNetworks__Output = { networks: networkIds.map((id) => index.networks.get(id)!), attachments, peers: [], services: [], task_names: [], ingress: null, published: [] };
  for (const network_id of networkIds) {
    const members = index.members.get(network_id) ?? [];
    const isIngress = network_id === mesh?.network.id;
    for (const m of members) {
      const node_addr = index.nodeAddrs.get(m.nodeId);
      if (m.nodeId !== nodeId && node_addr) result.peers.push({ network_id, ip: m.ip, node_addr });
      // Nothing resolves names on the mesh's network: it only carries published ports.
      if (!isIngress) result.task_names.push({ network_id, name: m.name, ip: m.ip });
    }
    if (isIngress) {
      result.ingress = ownIngress ? { network_id, address: `${ownIngress}/${prefixLength(mesh.network.subnet)}` } : null;
      for (const [id, ip] of mesh.nodes) {
        const node_addr = index.nodeAddrs.get(id);
        if (id !== nodeId && node_addr) result.peers.push({ network_id, ip, node_addr });
      }
      result.published = published(nodeId, tasks, attachments, members, mesh);
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

const prefixLength = (subnet: string) => subnet.split('/')[1];

/**
 * The ports a node answers on: each ingress-mode port, balanced over its service's running tasks
 * on the ingress network wherever they are (only while the node carries that network), and the
 * host-mode ports of its own running tasks, each to the tasks here.
 */
function published(
  nodeId: string,
  tasks: Task__Output[],
  attachments: TaskNetworks__Output[],
  members: Member[],
  mesh: NonNullable<NetworkIndex['ingress']>,
): PublishedPort__Output[] {
  const out: PublishedPort__Output[] = [];
  // A task here is reached on its first interface, the one its default route leaves by, so that
  // its answers come back through this node and the client's address is kept; one elsewhere, on
  // its ingress address, through the node's own (the worker masquerades those).
  const eth0 = new Map(attachments.map((a) => [a.id, a.networks[0] ? bare(a.networks[0].address) : '']));
  const serving = (serviceId: string, here: boolean) =>
    members
      .filter((m) => m.serviceId === serviceId && m.serving && (!here || m.nodeId === nodeId))
      .map((m) => (m.nodeId === nodeId && eth0.get(m.taskId)) || m.ip)
      .sort(byText);
  if (mesh.nodes.has(nodeId)) {
    for (const p of mesh.ports) {
      out.push({ service_id: p.serviceId, protocol: p.protocol, published_port: p.published, target_port: p.target, publish_mode: 'ingress', endpoints: serving(p.serviceId, false) });
    }
  }
  const hostPorts = new Map<string, PublishedPort__Output>();
  for (const t of tasks) {
    for (const p of t.endpoint?.ports ?? []) {
      if (p.publish_mode !== 'host') continue;
      const key = `${t.service_id}/${p.protocol}/${p.published_port}`;
      if (!hostPorts.has(key)) {
        hostPorts.set(key, { service_id: t.service_id, protocol: p.protocol, published_port: p.published_port, target_port: p.target_port, publish_mode: 'host', endpoints: serving(t.service_id, true) });
      }
    }
  }
  out.push(...hostPorts.values());
  return out.sort((a, b) => byText(a.protocol, b.protocol) || a.published_port - b.published_port || byText(a.service_id, b.service_id));
}
