/**
 * Cluster-wide ownership of ingress published ports. The routing mesh answers an ingress port on
 * every node, so a protocol+port belongs to one service in the whole cluster, and no other service
 * may publish it in host mode either; host-mode ports are otherwise per node (the scheduler keeps
 * those apart). Each claimed port is a record of its own, written
 * in the same transaction as the service: two services racing for a port cannot both commit its
 * creation, as two cannot both take a name.
 */
import type { PortConfig__Output } from '../gen/shoal/v1/PortConfig';
import type { Service__Output } from '../gen/shoal/v1/Service';
import type { ServiceSpec__Output } from '../gen/shoal/v1/ServiceSpec';
import { alreadyExists, resourceExhausted } from '../common/errors';
import type { Op, Store, Versioned } from './store/store';

/** Stored under "<protocol>-<port>", e.g. "tcp-8080". */
export interface PortClaim extends Versioned {
  service_id: string;
}

/** Where a published port of 0 is taken from, as in Swarm. */
export const DYNAMIC_PORTS = { first: 30000, last: 32767 } as const;

export const claimId = (protocol: string, port: number) => `${protocol}-${port}`;

/** Whether two specs publish the same ports: tasks are made with theirs, so other ports make other tasks. */
export const samePorts = (a: ServiceSpec__Output, b: ServiceSpec__Output): boolean => JSON.stringify(a.endpoint_spec?.ports ?? []) === JSON.stringify(b.endpoint_spec?.ports ?? []);

export interface PortConflict {
  /** The index in the ports of the spec. */
  index: number;
  /** "8080/tcp". */
  port: string;
  serviceId: string;
}

export interface PortPlan {
  /** The ports as given, an ingress port of 0 given the lowest free one. */
  ports: PortConfig__Output[];
  /** Claims to create (ports newly taken) and delete (ports the service no longer publishes). */
  ops: Op[];
  /** Ports another service holds (an ingress port it claims, or one it publishes in host mode, where an ingress port is asked); nothing may be written while there are any. */
  conflicts: PortConflict[];
}

/**
 * What service `serviceId` must write to hold exactly the ingress ports of `ports`, given every
 * claim in the cluster. A port it already holds stays its own; one it held and no longer
 * publishes is released, and may be handed out again to one of its own ports of 0. Throws
 * resourceExhausted when no port of the dynamic range is left. Pure.
 */
export function planPortClaims(serviceId: string, ports: PortConfig__Output[], claims: PortClaim[], hostPorts: Map<string, string> = new Map()): PortPlan {
  const byId = new Map(claims.map((c) => [c.id, c]));
  const wanted = new Set<string>();
  const conflicts: PortConflict[] = [];
  const holder = (id: string, ingress: boolean): string | undefined => {
    const c = byId.get(id);
    if (c && c.service_id !== serviceId) return c.service_id;
    const host = ingress ? hostPorts.get(id) : undefined;
    return host && host !== serviceId ? host : undefined;
  };
  const takenByOthers = (id: string) => holder(id, true) !== undefined;
  // Ports given explicitly first, so that one of 0 never takes a port the spec names later.
  for (const [index, p] of ports.entries()) {
    if (!p.published_port) continue;
    const id = claimId(p.protocol, p.published_port);
    const other = holder(id, p.publish_mode === 'ingress');
    if (other) conflicts.push({ index, port: `${p.published_port}/${p.protocol}`, serviceId: other });
    else if (p.publish_mode === 'ingress') wanted.add(id);
  }
  const filled = ports.map((p, index): PortConfig__Output => {
    if (p.publish_mode !== 'ingress' || p.published_port) return p;
    for (let port: number = DYNAMIC_PORTS.first; port <= DYNAMIC_PORTS.last; port++) {
      const id = claimId(p.protocol, port);
      if (wanted.has(id) || takenByOthers(id)) continue;
      wanted.add(id);
      return { ...p, published_port: port };
    }
    throw resourceExhausted(
      `invalid service spec: endpoint_spec.ports[${index}].published_port: no ${p.protocol} port is free in ${DYNAMIC_PORTS.first}–${DYNAMIC_PORTS.last}; publish a port of your choice`,
    );
  });
  const ops: Op[] = [];
  for (const id of wanted) if (!byId.has(id)) ops.push({ type: 'create', kind: 'published-ports', obj: { id, version: 0, service_id: serviceId } as PortClaim });
  for (const c of claims) if (c.service_id === serviceId && !wanted.has(c.id)) ops.push({ type: 'delete', kind: 'published-ports', id: c.id, version: c.version });
  return { ports: filled, ops, conflicts };
}

/**
 * Plans the claims of `ports` against the store as it is now: returns the ports to store (an
 * ingress port of 0 filled in) and the claim writes to commit with the service. Throws
 * alreadyExists naming the field, the port and its holder when another service holds one.
 */
export async function claimPorts(store: Store, serviceId: string, ports: PortConfig__Output[]): Promise<{ ports: PortConfig__Output[]; ops: Op[] }> {
  const services = await store.list<Service__Output>('services');
  const plan = planPortClaims(serviceId, ports, await store.list<PortClaim>('published-ports'), hostPortUsers(services));
  const conflict = plan.conflicts[0];
  if (conflict) {
    const holder = await store.get<Service__Output>('services', conflict.serviceId);
    const name = holder?.spec?.name ? `service "${holder.spec.name}"` : `service ${conflict.serviceId}`;
    throw alreadyExists(`invalid service spec: endpoint_spec.ports[${conflict.index}].published_port: published port ${conflict.port} is already in use by ${name}`);
  }
  return { ports: plan.ports, ops: plan.ops };
}

/**
 * Who publishes each protocol+port in host mode ("tcp-9090" → a service id). Read, not claimed: a
 * host-mode port asked at the very moment another service claims it for the mesh can slip by.
 */
export function hostPortUsers(services: Pick<Service__Output, 'id' | 'spec'>[]): Map<string, string> {
  const users = new Map<string, string>();
  for (const s of services) {
    for (const p of s.spec?.endpoint_spec?.ports ?? []) if (p.publish_mode === 'host') users.set(claimId(p.protocol, p.published_port), s.id);
  }
  return users;
}

/** Deletes of every claim the service holds, to commit with its removal. */
export async function releasePorts(store: Store, serviceId: string): Promise<Op[]> {
  return planPortClaims(serviceId, [], await store.list<PortClaim>('published-ports')).ops;
}
