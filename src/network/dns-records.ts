/**
 * What the node's resolver answers its containers, built from the overlay state the dispatcher
 * sends (NodeNetworks) whenever it changes, so that a query is a map lookup. Per network, as
 * Swarm's embedded DNS has it: a service's name → its VIP (a dnsrr service, which has none: the
 * addresses of its running tasks), `tasks.<service>` → the addresses of its running tasks, a
 * task's name ("api.1.<task id>") → its address, and the reverse (PTR) of each VIP and task
 * address. A container sees the names of its own networks only, first network
 * first; whatever they do not hold is for the host's resolvers. Pure.
 */
import type { Answer, Question } from 'dns-packet';
import type { NodeNetworks__Output } from '../gen/shoal/v1/NodeNetworks';

/** A VIP is the service's for as long as the service is on the network: caches may keep it. */
const VIP_TTL = 600;
/** Task addresses come and go with the tasks: caches should ask again soon. */
const TASK_TTL = 5;

interface Addresses {
  ips: string[];
  ttl: number;
}

interface NetworkRecords {
  /** Lower-case names without the final dot. */
  names: Map<string, Addresses>;
  /** "5.0.1.10.in-addr.arpa" → the name of what holds 10.1.0.5. */
  reverse: Map<string, { name: string; ttl: number }>;
}

export interface DnsTable {
  networks: Map<string, NetworkRecords>;
  /** Each local task's networks, in the order of its interfaces: whose names it sees. */
  containers: Map<string, string[]>;
}

const normal = (name: string) => name.toLowerCase().replace(/\.$/, '');

export const reverseName = (ip: string) => `${ip.split('.').reverse().join('.')}.in-addr.arpa`;

export function dnsTable(state: Pick<NodeNetworks__Output, 'attachments' | 'services' | 'task_names'>): DnsTable {
  const table: DnsTable = { networks: new Map(), containers: new Map() };
  const records = (networkId: string) => {
    let r = table.networks.get(networkId);
    if (!r) table.networks.set(networkId, (r = { names: new Map(), reverse: new Map() }));
    return r;
  };
  // The first to claim a name keeps it: services, then tasks.<service>, then tasks.
  const name = (r: NetworkRecords, n: string, a: Addresses) => {
    if (!r.names.has(normal(n))) r.names.set(normal(n), a);
  };
  const reverse = (r: NetworkRecords, ip: string, n: string, ttl: number) => {
    if (!r.reverse.has(reverseName(ip))) r.reverse.set(reverseName(ip), { name: n, ttl });
  };
  const named = state.services.filter((s) => s.service_name);
  for (const s of named) {
    const r = records(s.network_id);
    if (!s.vip) {
      name(r, s.service_name, { ips: s.endpoints, ttl: TASK_TTL });
      continue;
    }
    name(r, s.service_name, { ips: [s.vip], ttl: VIP_TTL });
    reverse(r, s.vip, s.service_name, VIP_TTL);
  }
  for (const s of named) name(records(s.network_id), `tasks.${s.service_name}`, { ips: s.endpoints, ttl: TASK_TTL });
  for (const t of state.task_names) {
    const r = records(t.network_id);
    name(r, t.name, { ips: [t.ip], ttl: TASK_TTL });
    reverse(r, t.ip, t.name, TASK_TTL);
  }
  for (const a of state.attachments) table.containers.set(a.id, a.networks.map((n) => n.network_id));
  return table;
}

/**
 * The answers to a question from the container of task `taskId`: its addresses for a name of its
 * networks (none, for a type other than A: the name exists, it has no such record), the name for
 * an address of theirs, or undefined for a question that is not theirs to answer.
 */
export function resolve(table: DnsTable, taskId: string, q: Question): Answer[] | undefined {
  if (q.class && q.class !== 'IN' && q.class !== 'ANY') return undefined;
  const asked = normal(q.name);
  // dns-packet's types leave out ANY, which it decodes all the same.
  const type = q.type as string;
  for (const networkId of table.containers.get(taskId) ?? []) {
    const r = table.networks.get(networkId);
    const a = r?.names.get(asked);
    if (a) return type === 'A' || type === 'ANY' ? a.ips.map((ip) => ({ name: q.name, type: 'A', class: 'IN', ttl: a.ttl, data: ip })) : [];
    const p = r?.reverse.get(asked);
    if (p) return type === 'PTR' || type === 'ANY' ? [{ name: q.name, type: 'PTR', class: 'IN', ttl: p.ttl, data: p.name }] : [];
  }
  return undefined;
}
