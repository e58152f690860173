import { status, type ServerWritableStream } from '@grpc/grpc-js';
import type { ControlHandlers } from '../gen/shoal/v1/Control';
import type { Service__Output } from '../gen/shoal/v1/Service';
import type { ServiceResponse__Output } from '../gen/shoal/v1/ServiceResponse';
import type { ServiceSpec, ServiceSpec__Output } from '../gen/shoal/v1/ServiceSpec';
import type { Task__Output } from '../gen/shoal/v1/Task';
import type { LogLine } from '../gen/shoal/v1/LogLine';
import type { ServiceLogsRequest__Output } from '../gen/shoal/v1/ServiceLogsRequest';
import { aborted, alreadyExists, failedPrecondition, failStream, hasCode, invalidArgument, notFound, unavailable } from '../common/errors';
import { unary } from '../common/grpc-handlers';
import { newId, now, taskName, wantsRunning } from '../common/tasks';
import type { NodeLogs } from './dispatcher/node-logs';
import type { Op, Store, Versioned } from './store/store';
import type { StoreCache } from './store/cache';
import type { StoredRegistryAuth } from './registry-auth';
import { validateServiceSpec } from './validate';
import { rolledBack } from './orchestrator/update';
import type { ImagePinner } from './pin-image';
import type { RegistryAuth as RegistryAuthMsg } from '../gen/shoal/v1/RegistryAuth';
import type { RegistryAuth } from '../images/registry/registries';
import { parseReference } from '../images/reference';
import type { Network__Output } from '../gen/shoal/v1/Network';
import type { ServiceVips__Output } from '../gen/shoal/v1/ServiceVips';
import type { PortConfig__Output } from '../gen/shoal/v1/PortConfig';
import type { TaskNetworks__Output } from '../gen/shoal/v1/TaskNetworks';
import { resolveServiceNetworks } from './networks';
import { claimPorts, releasePorts, samePorts } from './published-ports';

// How long a create keeps reading, and finding out whether it was applied, while etcd is
// unavailable: a restarted member answers within seconds, and etcd's client then waits out its circuit breaker (5 s).
const SETTLE_CREATE_MS = 20_000;
const SETTLE_RETRY_MS = 500;
// A create whose networks or port claims were written meanwhile (another service joining them,
// or taking a port) plans again.
const JOIN_ATTEMPTS = 5;

interface ServiceName extends Versioned {
  service_id: string;
}

/** Control API handlers that need the cluster store; the daemon answers Init and Info itself. */
export type ClusterHandlers = Pick<
  ControlHandlers,
  'CreateService' | 'GetService' | 'ListServices' | 'UpdateService' | 'RemoveService' | 'ListTasks' | 'ServiceLogs' | 'RollbackService'
>;

/**
 * The cluster-level control API. Every spec is validated before anything is stored, and every
 * write is a compare-and-swap, so a bad request or a race changes nothing.
 */
export class ControlApi {
  constructor(
    private readonly store: Store,
    /**
     * This manager's watch-fed copy of the store, which the listings read once it has caught up
     * with etcd: a CLI waiting on a service polls them, and listing every task from etcd per poll
     * cost more than the orchestration it was waiting for (45 MB a poll at 100,000 tasks).
     */
    private readonly cache: StoreCache,
    private readonly nodeLogs: NodeLogs,
    /** Resolves image tags to digests at create and update; absent, tags are stored as given. */
    private readonly pinImage?: ImagePinner,
  ) {}

  handlers(): ClusterHandlers {
    return {
      CreateService: unary((req) => this.createService(req.spec, req.registry_auth)),
      GetService: unary((req) => this.getService(req.service)),
      ListServices: unary(() => this.listServices()),
      UpdateService: unary((req) => this.updateService(req.service, req.version, req.spec, req.registry_auth)),
      RemoveService: unary((req) => this.removeService(req.service)),
      ListTasks: unary((req) => this.listTasks(req.service, req.node_id)),
      ServiceLogs: (call) => void this.serviceLogs(call),
      RollbackService: unary((req) => this.rollbackService(req.service)),
    };
  }

  private async createService(input: ServiceSpec | null, authIn?: RegistryAuthMsg | null): Promise<ServiceResponse__Output> {
    const spec = this.validate(input);
    const auth = checkAuth(authIn);
    const id = newId();
    const requested = spec.endpoint_spec!.ports;
    const deadline = Date.now() + SETTLE_CREATE_MS;
    // Nothing is written before the commit, so reads that find etcd unavailable are simply tried again.
    let shared = await this.untilAvailable(deadline, spec.name, () => this.shared(id, spec, requested));
    const warnings = await this.pin(spec, auth);
    const ts = now();
    const service: Service__Output = {
      id,
      version: 0,
      spec,
      spec_version: 1,
      created_at: ts,
      updated_at: ts,
      errors: [],
      update_status: null,
      previous_spec: null,
      previous_spec_version: 0,
      virtual_ips: [],
    };
    const name: ServiceName = { id: spec.name, version: 0, service_id: service.id };
    const ops: Parameters<Store['commit']>[0] = [
      { type: 'create', kind: 'service-names', obj: name },
      { type: 'create', kind: 'services', obj: service },
    ];
    // In the same transaction, so the dispatcher never sees the service's tasks without them.
    if (auth) ops.push({ type: 'create', kind: 'registry-auth', obj: { id: service.id, version: 0, ...auth } as StoredRegistryAuth });
    for (let attempt = 1; ; attempt++) {
      try {
        await this.store.commit([...ops, ...shared]);
        return { service, warnings };
      } catch (err) {
        if (shared.length && hasCode(err, status.ABORTED) && attempt < JOIN_ATTEMPTS && !(await this.store.get('service-names', spec.name))) {
          // A port taken meanwhile is now refused by name, rather than as a conflict to retry.
          shared = await this.shared(id, spec, requested);
          continue;
        }
        return { service: await this.settleCreate(err, [...ops, ...shared], service, deadline), warnings };
      }
    }
  }

  /**
   * The writes of what a service shares with others, committed with it: the networks it joins
   * and the ingress ports it claims (the spec's ports set, in place, from `requested` with any
   * port of 0 filled in).
   */
  private async shared(serviceId: string, spec: ServiceSpec__Output, requested: PortConfig__Output[]): Promise<Op[]> {
    const joins = await this.joinNetworks(spec);
    const claims = await claimPorts(this.store, serviceId, requested);
    spec.endpoint_spec!.ports = claims.ports;
    return [...joins, ...claims.ops];
  }

  /**
   * Resolves the spec's networks to their ids, in place, and returns writes of those networks as
   * read: committed with the service, they make a concurrent `network rm` (a compare-and-swap on
   * the network) fail rather than leave the service on a network that is gone.
   */
  private async joinNetworks(spec: ServiceSpec__Output): Promise<Op[]> {
    const template = spec.task_template!;
    if (!template.networks.length) return [];
    const joined = resolveServiceNetworks(template.networks, await this.store.list<Network__Output>('networks'));
    template.networks = joined.map((n) => ({ target: n.id }));
    return joined.map((obj): Op => ({ type: 'update', kind: 'networks', obj }));
  }

  /**
   * Runs `read`, again every SETTLE_RETRY_MS while etcd is unavailable, up to `deadline`; past it,
   * the error says that service `name` was not created (nothing had been written yet).
   */
  private async untilAvailable<T>(deadline: number, name: string, read: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await read();
      } catch (err) {
        if (!hasCode(err, status.UNAVAILABLE)) throw err;
        if (Date.now() > deadline) throw unavailable(`${(err as Error).message}; service "${name}" was not created`);
      }
      await new Promise((r) => setTimeout(r, SETTLE_RETRY_MS));
    }
  }

  /**
   * After a create's commit failed, finds out whether it was applied anyway (etcd can fail after
   * taking a write, and its client retries): the name key says whose the name is. While etcd is
   * unavailable and the name is free, the create (a compare-and-swap, so never applied twice) is
   * tried again for up to SETTLE_CREATE_MS; then the error says what is known.
   */
  private async settleCreate(err: unknown, ops: Op[], service: Service__Output, deadline: number): Promise<Service__Output> {
    const name = service.spec!.name;
    let failure = err;
    while (hasCode(failure, status.UNAVAILABLE) || hasCode(failure, status.ABORTED)) {
      const retry = hasCode(failure, status.UNAVAILABLE);
      try {
        const owner = await this.store.get<ServiceName>('service-names', name);
        if (owner?.service_id === service.id) return (await this.store.get<Service__Output>('services', service.id)) ?? service;
        if (owner) throw alreadyExists(`a service named "${name}" already exists`);
        if (!retry) break;
        await this.store.commit(ops);
        return service;
      } catch (e) {
        failure = e;
      }
      if (!hasCode(failure, status.UNAVAILABLE)) continue;
      if (Date.now() > deadline) {
        throw unavailable(`${(failure as Error).message}; whether service "${name}" was created is unknown: check with \`shoal service ls\``);
      }
      await new Promise((r) => setTimeout(r, SETTLE_RETRY_MS));
    }
    throw failure;
  }

  private async updateService(ref: string, version: number, input: ServiceSpec | null, authIn?: RegistryAuthMsg | null): Promise<ServiceResponse__Output> {
    const current = await this.findService(ref);
    if (version !== current.version) {
      throw aborted(`service ${current.spec!.name} changed since it was read (version ${version}, now ${current.version}); retry`);
    }
    const spec = this.validate(input);
    if (!!spec.mode?.global !== !!current.spec!.mode?.global) {
      throw invalidArgument(`invalid service spec: mode: service ${current.spec!.name} is ${current.spec!.mode?.global ? 'global' : 'replicated'}; the mode cannot change (remove and create the service again)`);
    }
    const newAuth = checkAuth(authIn);
    const requested = spec.endpoint_spec!.ports;
    const shared = await this.shared(current.id, spec, requested);
    const stored = await this.store.get<StoredRegistryAuth>('registry-auth', current.id);
    // Only a changed image is resolved again; an unchanged one keeps the digest it was pinned to.
    const imageChanged = spec.task_template?.container?.image !== current.spec!.task_template?.container?.image;
    const warnings = imageChanged ? await this.pin(spec, newAuth ?? stored ?? undefined) : [];
    // Tasks are made with the ports they publish (they join the ingress network, or take host
    // ports on their node), so new ports are a new template too, as in Swarm.
    const templateChanged = JSON.stringify(spec.task_template) !== JSON.stringify(current.spec!.task_template) || !samePorts(spec, current.spec!);
    // Any update resumes a paused rollout; a new template starts a new one (the leader begins it).
    const paused = current.update_status?.state === 'paused' || current.update_status?.state === 'rollback_paused';
    const updated: Service__Output = {
      ...current,
      spec,
      // Past both versions the service holds: a rollback brings the previous one back, and its
      // tasks must not be mistaken for those of a newer spec.
      spec_version: templateChanged ? Math.max(current.spec_version, current.previous_spec_version ?? 0) + 1 : current.spec_version,
      previous_spec: current.spec,
      previous_spec_version: current.spec_version,
      update_status: templateChanged || paused ? null : current.update_status,
      updated_at: now(),
    };
    const ops: Parameters<Store['commit']>[0] = [{ type: 'update', kind: 'services', obj: updated }, ...shared];
    if (newAuth) {
      const obj = { ...stored, ...newAuth, id: current.id, version: stored?.version ?? 0 } as StoredRegistryAuth;
      ops.push({ type: stored ? 'update' : 'create', kind: 'registry-auth', obj });
    }
    if (spec.name !== current.spec!.name) {
      const oldName = await this.store.mustGet<ServiceName>('service-names', current.spec!.name, 'service name');
      ops.push({ type: 'delete', kind: 'service-names', id: oldName.id, version: oldName.version });
      ops.push({ type: 'create', kind: 'service-names', obj: { id: spec.name, version: 0, service_id: current.id } as ServiceName });
    }
    try {
      await this.store.commit(ops);
    } catch (err) {
      if (spec.name !== current.spec!.name && (await this.store.get('service-names', spec.name))) {
        throw alreadyExists(`a service named "${spec.name}" already exists`);
      }
      // A port another service took meanwhile is named; any other conflict is for the caller to retry.
      if (hasCode(err, status.ABORTED)) await claimPorts(this.store, current.id, requested);
      throw err;
    }
    return { service: updated, warnings };
  }

  /** Restores the previous spec (a compare-and-swap); the leader rolls it out with its rollback config. */
  private async rollbackService(ref: string): Promise<ServiceResponse__Output> {
    const current = await this.findService(ref);
    if (!current.previous_spec) {
      throw failedPrecondition(`service ${current.spec!.name} has no previous spec to roll back to: it has not been updated since it was created`);
    }
    const service = rolledBack(current, now(), 'manually requested rollback');
    await this.store.commit([{ type: 'update', kind: 'services', obj: service }]);
    return { service, warnings: [] };
  }

  private async removeService(ref: string): Promise<{ id: string }> {
    const service = await this.findService(ref);
    const ops: Parameters<Store['commit']>[0] = [{ type: 'delete', kind: 'services', id: service.id, version: service.version }];
    const name = await this.store.get<ServiceName>('service-names', service.spec!.name);
    if (name?.service_id === service.id) ops.push({ type: 'delete', kind: 'service-names', id: name.id, version: name.version });
    const auth = await this.store.get<StoredRegistryAuth>('registry-auth', service.id);
    if (auth) ops.push({ type: 'delete', kind: 'registry-auth', id: auth.id, version: auth.version });
    ops.push(...(await releasePorts(this.store, service.id)));
    await this.store.commit(ops);
    return { id: service.id };
  }

  /** The cache, once it shows every write etcd had applied when called: a read as fresh as one from etcd. */
  private async fresh(): Promise<StoreCache> {
    await this.cache.caughtUp();
    return this.cache;
  }

  private async listServices() {
    const cache = await this.fresh();
    const services = cache.services();
    const tasks = cache.tasks();
    const running = new Map<string, number>();
    // A global service wants one task per eligible node: the orchestrator keeps exactly those live.
    const live = new Map<string, number>();
    for (const t of tasks) {
      if (t.desired_state === 'RUNNING' && t.status!.state === 'RUNNING') running.set(t.service_id, (running.get(t.service_id) ?? 0) + 1);
      if (wantsRunning(t.desired_state)) live.set(t.service_id, (live.get(t.service_id) ?? 0) + 1);
    }
    services.sort((a, b) => a.spec!.name.localeCompare(b.spec!.name));
    return {
      services: services.map((service) => ({
        service,
        running: running.get(service.id) ?? 0,
        desired: service.spec!.mode!.global ? (live.get(service.id) ?? 0) : (service.spec!.mode!.replicated?.replicas ?? 0),
      })),
    };
  }

  private async listTasks(serviceRef: string, nodeId: string) {
    const serviceId = serviceRef ? (await this.findService(serviceRef)).id : '';
    const cache = await this.fresh();
    const tasks = (serviceId ? cache.tasksOfService(serviceId) : nodeId ? cache.tasksOfNode(nodeId) : cache.tasks()).filter(
      (t) => (!serviceId || t.service_id === serviceId) && (!nodeId || t.node_id === nodeId),
    );
    tasks.sort(
      (a, b) =>
        a.service_name.localeCompare(b.service_name) || a.slot - b.slot || b.created_at.localeCompare(a.created_at) || a.id.localeCompare(b.id),
    );
    const task_networks = tasks.map((t) => cache.get<TaskNetworks__Output>('task-networks', t.id)).filter((a) => a !== undefined);
    return { tasks, task_networks };
  }

  /** Relays each node's task logs to the client, prefixed with the task; ends when every node has. */
  private async serviceLogs(call: ServerWritableStream<ServiceLogsRequest__Output, LogLine>): Promise<void> {
    const unsubscribes: (() => void)[] = [];
    const stop = () => unsubscribes.splice(0).forEach((u) => u());
    const fail = (err: unknown) => {
      stop();
      failStream(call, err);
    };
    call.on('cancelled', stop);
    try {
      const service = await this.findService(call.request.service);
      const cache = await this.fresh();
      const tasks = cache.tasksOfService(service.id).filter((t) => t.node_id);
      const byNode = new Map<string, Task__Output[]>();
      for (const t of tasks) byNode.set(t.node_id, [...(byNode.get(t.node_id) ?? []), t]);
      // Docker's prefix, `web.2.<task id>@<node>`: which replica, and on which host it runs.
      const hosts = new Map(cache.nodes().map((n) => [n.id, n.description?.hostname || n.id]));
      const names = new Map(tasks.map((t) => [t.id, `${taskName(t)}.${t.id}@${hosts.get(t.node_id) ?? t.node_id}`]));
      let open = byNode.size;
      if (!open) return void call.end();
      const closedOne = () => {
        if (--open === 0) call.end();
      };
      await Promise.all(
        [...byNode].map(async ([nodeId, nodeTasks]) => {
          const { follow, tail, since_ms } = call.request;
          const sub = { id: newId(), task_ids: nodeTasks.map((t) => t.id), follow, tail, since_ms };
          const unsubscribe = await this.nodeLogs.subscribe(nodeId, sub, (msg) => {
            for (const line of msg.lines) call.write({ ...line, task_name: names.get(line.task_id) ?? line.task_id });
            if (msg.err) fail(unavailable(msg.err));
            else if (msg.close) closedOne();
          });
          if (!unsubscribe) {
            // The other nodes' logs are still worth having: the missing ones are named, not fatal.
            const which = nodeTasks.map((t) => taskName(t)).join(', ');
            call.write({ warning: `node ${hosts.get(nodeId) ?? nodeId} is down or not connected to any manager; the logs of ${which} cannot be read until it is back` });
            return closedOne();
          }
          if (call.cancelled) unsubscribe();
          else unsubscribes.push(unsubscribe);
        }),
      );
    } catch (err) {
      fail(err);
    }
  }

  /** The service with its VIPs, as `service inspect` shows them. */
  private async getService(ref: string): Promise<Service__Output> {
    const service = await this.findService(ref);
    const vips = await this.store.get<ServiceVips__Output>('service-vips', service.id);
    return { ...service, virtual_ips: vips?.virtual_ips ?? [] };
  }

  /** A service by exact id, then exact name, then unique id prefix, as Docker resolves them. */
  async findService(ref: string): Promise<Service__Output> {
    if (!ref) throw invalidArgument('a service name or ID is required');
    const byId = await this.store.get<Service__Output>('services', ref);
    if (byId) return byId;
    const name = await this.store.get<ServiceName>('service-names', ref);
    if (name) {
      const s = await this.store.get<Service__Output>('services', name.service_id);
      if (s) return s;
    }
    const matches = (await this.store.list<Service__Output>('services')).filter((s) => s.id.startsWith(ref));
    if (matches.length === 1) return matches[0];
    if (matches.length > 1) throw invalidArgument(`service ID prefix "${ref}" is ambiguous: it matches ${matches.length} services`);
    throw notFound(`service ${ref} not found`);
  }

  /** Pins the spec's image to a digest in place; returns warnings for the operator. */
  private async pin(spec: ServiceSpec__Output, auth?: RegistryAuth): Promise<string[]> {
    const container = spec.task_template?.container;
    if (!this.pinImage || !container?.image) return [];
    // Credentials go only to the registry they are for, whatever image the spec names.
    let registry = '';
    try {
      registry = parseReference(container.image).registry;
    } catch {
      // Validation reports a bad reference; it is not resolved here.
    }
    const pinned = await this.pinImage(container.image, auth && auth.registry === registry ? auth : undefined);
    container.image = pinned.image;
    return pinned.warning ? [pinned.warning] : [];
  }

  private validate(input: ServiceSpec | null): ServiceSpec__Output {
    if (!input) throw invalidArgument('invalid service spec: spec: required');
    return validateServiceSpec(input);
  }
}

/** Credentials as sent with --with-registry-auth, or undefined when none were. Never echoes them. */
function checkAuth(auth: RegistryAuthMsg | null | undefined): RegistryAuth | undefined {
  if (!auth || (!auth.registry && !auth.username && !auth.password)) return undefined;
  if (!auth.registry || !auth.username) throw invalidArgument('invalid registry auth: a registry and a username are required');
  if (!/^[a-zA-Z0-9.[\]:-]+$/.test(auth.registry)) throw invalidArgument(`invalid registry auth: "${auth.registry}" is not a registry host[:port]`);
  return { registry: auth.registry, username: auth.username, password: auth.password ?? '' };
}
