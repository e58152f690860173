import { status, type ServerWritableStream } from '@grpc/grpc-js';
import type { DispatcherHandlers } from '../../gen/shoal/v1/Dispatcher';
import type { Node__Output } from '../../gen/shoal/v1/Node';
import type { Task__Output } from '../../gen/shoal/v1/Task';
import type { SessionMessage } from '../../gen/shoal/v1/SessionMessage';
import type { SessionRequest__Output } from '../../gen/shoal/v1/SessionRequest';
import type { LogSubscription } from '../../gen/shoal/v1/LogSubscription';
import type { PublishLogsMessage__Output } from '../../gen/shoal/v1/PublishLogsMessage';
import { failedPrecondition, failStream, invalidArgument, type ShoalError, toServiceError, unavailable } from '../../common/errors';
import { requireRole } from '../../ca/authz';
import type { SessionRegistry } from './sessions';
import { type Change, changedTasks, type StoreCache } from '../store/cache';
import type { Logger } from '../../common/logger';
import { newId, now, publishesPorts, rank } from '../../common/tasks';
import type { Store } from '../store/store';
import { diffAssignments } from './assignments';
import { type NodeReports, statusWrites } from './status-writes';
import type { StoredRegistryAuth } from '../registry-auth';
import type { RegistryAuth } from '../../gen/shoal/v1/RegistryAuth';
import type { Network__Output } from '../../gen/shoal/v1/Network';
import type { NodeIngress__Output } from '../../gen/shoal/v1/NodeIngress';
import type { ServiceVips__Output } from '../../gen/shoal/v1/ServiceVips';
import type { TaskNetworks__Output } from '../../gen/shoal/v1/TaskNetworks';
import { addressed, indexNetworks, nodeNetworks, type NetworkIndex } from './node-networks';

export const HEARTBEAT_PERIOD_MS = 5000;
// A node is down after missing this many heartbeats in a row.
export const HEARTBEAT_MISSES = 3;
const PUSH_DEBOUNCE_MS = 2;
/**
 * A node is sent changes at most this often: a scale-up placed in batches of a few thousand tasks
 * over a thousand nodes touches every node in every batch, and a message per node and batch (and a
 * status report back for each) cost both sides far more than the few tasks each carried.
 */
const PUSH_INTERVAL_MS = 250;
const STATUS_RETRIES = 5;

interface Session {
  id: string;
  nodeId: string;
  call: ServerWritableStream<SessionRequest__Output, SessionMessage>;
  lastHeartbeat: number;
  /** What this session's worker was last told: its tasks (id → key), its overlay state and everything else, as keys. */
  sentTasks: Map<string, string> | undefined;
  sentNetworks: string;
  sentMeta: string;
  /** When this session was last written to (ms). */
  pushedAt: number;
  /** The log subscriptions its worker serves: they end with the session. */
  logSubscriptions: Set<string>;
}

/** Kinds whose change may change what some worker must be told. */
const PUSH_KINDS = ['tasks', 'registry-auth', 'nodes', 'networks', 'task-networks', 'service-vips', 'node-ingress', 'services', 'reload'];

/** Only node certificates reach the dispatcher: a worker's, or a manager's own worker side. */
const NODE_ROLES = ['worker', 'manager'] as const;

export type LogListener = (msg: PublishLogsMessage__Output) => void;

/**
 * The manager's side of worker sessions: registers nodes, pushes each node its task set,
 * takes batched status reports into etcd, and relays log subscriptions. Workers never see etcd.
 */
export class Dispatcher {
  private readonly sessions = new Map<string, Session>();
  private readonly logListeners = new Map<string, LogListener>();
  private unwatch: (() => void) | undefined;
  private pushTimer: NodeJS.Timeout | undefined;
  /** The push of nodes held back by PUSH_INTERVAL_MS. */
  private heldTimer: NodeJS.Timeout | undefined;
  private reaper: NodeJS.Timeout | undefined;
  /**
   * Nodes whose task set changed since the last push, or every node: a change to anything but
   * a task off every network may change what any node is told (its networks' peers, VIPs and
   * names, the manager list, its role).
   */
  private dirty = new Set<string>();
  private allDirty = true;
  /** The overlay index of the last push to every node; tasks off every network do not change it. */
  private index: NetworkIndex | undefined;
  /** Status reports waiting for the next write, with their calls to answer once it is made. */
  private statusQueue: { reports: NodeReports; done: (err: ShoalError | null) => void }[] = [];
  private writingStatus = false;

  constructor(
    private readonly store: Store,
    /** The watch-fed view of the store: pushes and status batches read it, not etcd. */
    private readonly cache: StoreCache,
    private readonly registry: SessionRegistry,
    private readonly clusterId: string,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.unwatch = this.cache.onChange((kind, id, change) => {
      if (!PUSH_KINDS.includes(kind)) return;
      this.markDirty(kind, id, change);
      this.schedulePush();
    });
    this.reaper = setInterval(() => void this.expireSessions(), HEARTBEAT_PERIOD_MS);
    this.reaper.unref();
  }

  async stop(): Promise<void> {
    if (this.reaper) clearInterval(this.reaper);
    if (this.pushTimer) clearTimeout(this.pushTimer);
    if (this.heldTimer) clearTimeout(this.heldTimer);
    this.unwatch?.();
    for (const s of this.sessions.values()) s.call.end();
    this.sessions.clear();
  }

  /** Every call's node is the one its certificate names, never a field of the request. */
  handlers(): DispatcherHandlers {
    return {
      Session: (call) => {
        let nodeId: string;
        try {
          nodeId = requireRole(call, [...NODE_ROLES], 'the dispatcher', this.clusterId).nodeId;
        } catch (err) {
          return failStream(call, err);
        }
        void this.openSession(nodeId, call);
      },
      Heartbeat: (call, cb) => {
        try {
          const s = this.currentSession(call, call.request.session_id);
          s.lastHeartbeat = Date.now();
          cb(null, { period_ms: HEARTBEAT_PERIOD_MS });
          this.reviveIfDown(s);
        } catch (err) {
          cb(toServiceError(err));
        }
      },
      UpdateTaskStatus: (call, cb) => {
        let s: Session;
        try {
          s = this.currentSession(call, call.request.session_id);
        } catch (err) {
          return cb(toServiceError(err));
        }
        this.statusQueue.push({ reports: { nodeId: s.nodeId, updates: call.request.updates }, done: (err) => (err ? cb(toServiceError(err)) : cb(null, {})) });
        if (!this.writingStatus) {
          this.writingStatus = true;
          setImmediate(() => void this.writeStatus());
        }
      },
      PublishLogs: (call, cb) => {
        try {
          requireRole(call, [...NODE_ROLES], 'the dispatcher', this.clusterId);
        } catch (err) {
          return cb(toServiceError(err));
        }
        call.on('data', (msg: PublishLogsMessage__Output) => this.logListeners.get(msg.subscription_id)?.(msg));
        call.on('end', () => cb(null, {}));
        call.on('error', () => undefined);
      },
      RelayLogs: (call) => {
        try {
          requireRole(call, ['manager'], 'relaying task logs', this.clusterId);
          const { node_id, subscription } = call.request;
          if (!subscription) throw invalidArgument('a log subscription is required');
          const unsubscribe = this.subscribeLogs(node_id, subscription, (msg) => {
            call.write(msg);
            if (msg.close) call.end();
          });
          call.on('cancelled', unsubscribe);
          call.on('close', unsubscribe);
        } catch (err) {
          failStream(call, err);
        }
      },
    };
  }

  /** Whether the node's session is with this manager. */
  holds(nodeId: string): boolean {
    return this.sessions.has(nodeId);
  }

  /** Asks a node's agent for task logs; the listener gets its PublishLogs messages. */
  subscribeLogs(nodeId: string, sub: LogSubscription, listener: LogListener): () => void {
    const s = this.sessions.get(nodeId);
    if (!s) throw unavailable(`node ${nodeId} is not connected, so its task logs cannot be read`);
    this.logListeners.set(sub.id!, listener);
    s.logSubscriptions.add(sub.id!);
    s.call.write({ session_id: s.id, heartbeat_period_ms: HEARTBEAT_PERIOD_MS, log_subscription: sub });
    return () => {
      s.logSubscriptions.delete(sub.id!);
      if (!this.logListeners.delete(sub.id!)) return;
      this.sessions.get(nodeId)?.call.write({ session_id: s.id, heartbeat_period_ms: HEARTBEAT_PERIOD_MS, cancel_log_subscription: sub.id });
    };
  }

  /**
   * Ends the log subscriptions a session served, saying why: its worker sends no more lines for
   * them, and a client following the logs would otherwise wait for ever.
   */
  private endLogSubscriptions(s: Session, what: string): void {
    const node = this.cache.get<Node__Output>('nodes', s.nodeId)?.description?.hostname || s.nodeId;
    for (const id of s.logSubscriptions) {
      const listener = this.logListeners.get(id);
      this.logListeners.delete(id);
      listener?.({ subscription_id: id, lines: [], close: true, err: `node ${node} ${what}; its task logs stopped there` });
    }
    s.logSubscriptions.clear();
  }

  private currentSession(call: Parameters<typeof requireRole>[0], sessionId: string): Session {
    const { nodeId } = requireRole(call, [...NODE_ROLES], 'the dispatcher', this.clusterId);
    const s = this.sessions.get(nodeId);
    if (!s || s.id !== sessionId) throw failedPrecondition('session is not current; open a new one');
    return s;
  }

  private async openSession(nodeId: string, call: ServerWritableStream<SessionRequest__Output, SessionMessage>): Promise<void> {
    const { description } = call.request;
    const session: Session = { id: newId(), nodeId, call, lastHeartbeat: Date.now(), sentTasks: undefined, sentNetworks: '', sentMeta: '', pushedAt: 0, logSubscriptions: new Set() };
    // The cache knows every node but one that joined a moment ago; etcd is asked only then.
    const known =
      this.cache.get<Node__Output>('nodes', nodeId) !== undefined ||
      (await this.store.get<Node__Output>('nodes', nodeId).then(
        (n) => n !== null,
        () => true,
      ));
    if (!known) {
      // A certificate outlives `node rm`: tell the node it was removed, so it stops and forgets the cluster.
      call.write({ session_id: session.id, heartbeat_period_ms: HEARTBEAT_PERIOD_MS, removed: true, managers: [] });
      return void call.end();
    }
    try {
      // Registered first, so the node is never Ready without a session some manager answers for.
      await this.registry.open(nodeId, session.id);
      await this.markNode(nodeId, (n) => ({
        ...n,
        description: description ?? n.description,
        status: { state: 'NODE_READY', message: '', addr: peerHost(call.getPeer()) || n.status?.addr || '', heartbeat_at: now() },
      }));
    } catch (err) {
      return failStream(call, err);
    }
    if (call.cancelled) {
      // The node gave up waiting (and may be opening a session elsewhere): its 'cancelled' came
      // before there were listeners, and a dead stream must not pass for its session.
      void this.closeSession(session);
      return;
    }
    const previous = this.sessions.get(nodeId);
    if (previous) {
      previous.call.end();
      this.endLogSubscriptions(previous, 'opened a new session');
    }
    this.sessions.set(nodeId, session);
    this.log.info({ nodeId, sessionId: session.id }, 'worker session opened');
    this.dirty.add(nodeId);
    const closed = () => {
      if (this.sessions.get(nodeId) !== session) return;
      this.sessions.delete(nodeId);
      this.log.warn({ nodeId }, 'worker session closed');
      this.endLogSubscriptions(session, 'disconnected');
      void this.closeSession(session);
    };
    call.on('cancelled', closed);
    call.on('close', closed);
    call.on('error', closed);
    await this.pushAssignments();
  }

  private markDirty(kind: string, id: string, change: Change | undefined): void {
    // Joins and session opens change one node each: with every node pushed on each, a thousand joins were quadratic.
    if (kind === 'nodes' && change && !newsToOthers(change)) {
      this.dirty.add(id);
      return;
    }
    const tasks = changedTasks(change);
    if (kind !== 'tasks' || !tasks.length || tasks.some(networked)) this.allDirty = true;
    else for (const t of tasks) this.dirty.add(t.node_id);
  }

  private schedulePush(): void {
    if (this.pushTimer) return;
    this.pushTimer = setTimeout(() => {
      this.pushTimer = undefined;
      this.pushAssignments().catch((err) => {
        this.log.warn({ err }, 'pushing assignments failed; retrying');
        this.allDirty = true;
        setTimeout(() => this.schedulePush(), 500).unref();
      });
    }, PUSH_DEBOUNCE_MS);
  }

  /**
   * Sends every connected node whose task set may have changed what changed since the last send
   * (the whole set to a new session). Only the nodes of the tasks that changed are looked at,
   * unless something every node may hear of changed.
   */
  private async pushAssignments(): Promise<void> {
    if (!this.sessions.size) return;
    const began = performance.now();
    let written = 0;
    const all = this.allDirty || !this.index;
    const dirty = this.dirty;
    this.allDirty = false;
    this.dirty = new Set();
    const nodes = this.cache.nodes();
    const managers = managerAddrs(nodes);
    if (all) {
      this.index = indexNetworks(
        this.cache.list<Network__Output>('networks'),
        this.cache.list<TaskNetworks__Output>('task-networks'),
        this.cache.list<ServiceVips__Output>('service-vips'),
        this.cache.tasks(),
        new Map(nodes.filter((n) => n.status?.addr).map((n) => [n.id, n.status!.addr])),
        this.cache.services(),
        this.cache.list<NodeIngress__Output>('node-ingress'),
      );
    }
    const index = this.index!;
    const sessions = all ? [...this.sessions.values()] : [...dirty].flatMap((id) => this.sessions.get(id) ?? []);
    const nowMs = Date.now();
    let holdMs = Infinity;
    for (const s of sessions) {
      const wait = s.pushedAt + PUSH_INTERVAL_MS - nowMs;
      if (wait > 0) {
        this.dirty.add(s.nodeId);
        holdMs = Math.min(holdMs, wait);
        continue;
      }
      // A global task names its node from birth, but is the node's only once the scheduler has checked it fits.
      const set = this.cache.tasksOfNode(s.nodeId).filter((t) => rank(t.status!.state) >= rank('ASSIGNED') && addressed(t, index));
      const networks = nodeNetworks(s.nodeId, set, index);
      const networksKey = JSON.stringify(networks);
      // A node gets the registry credentials of the services it runs tasks of, and no others.
      const registry_auth: Record<string, RegistryAuth> = {};
      const authVersions: string[] = [];
      for (const t of set) {
        const a = this.cache.get<StoredRegistryAuth>('registry-auth', t.service_id);
        if (!a || registry_auth[t.service_id]) continue;
        registry_auth[t.service_id] = { registry: a.registry, username: a.username, password: a.password };
        authVersions.push(`${a.id}:${a.version}`);
      }
      const node = this.cache.get<Node__Output>('nodes', s.nodeId);
      const desiredRole = node?.spec?.role ?? '';
      // Status reports come from the worker itself; only membership, desired states, credentials,
      // the manager list and the node's role are news to it.
      const meta = [authVersions.join(','), managers.join(','), desiredRole, node ? '' : 'removed'].join('|');
      const { changed, removed, next } = diffAssignments(s.sentTasks ?? new Map(), set);
      const incremental = s.sentTasks !== undefined;
      const networksChanged = !incremental || networksKey !== s.sentNetworks;
      if (incremental && !changed.length && !removed.length && meta === s.sentMeta && !networksChanged) continue;
      s.sentTasks = next;
      s.sentMeta = meta;
      s.sentNetworks = networksKey;
      s.pushedAt = nowMs;
      written++;
      const overlay = networksChanged ? { networks } : {};
      s.call.write({
        session_id: s.id,
        heartbeat_period_ms: HEARTBEAT_PERIOD_MS,
        assignments: incremental
          ? { tasks: changed, removed_task_ids: removed, incremental, registry_auth, ...overlay }
          : { tasks: set, registry_auth, ...overlay },
        managers,
        desired_role: desiredRole,
        removed: !node,
      });
    }
    if (holdMs < Infinity && !this.heldTimer) {
      this.heldTimer = setTimeout(() => {
        this.heldTimer = undefined;
        this.schedulePush();
      }, holdMs);
    }
    if (written) this.log.debug({ nodes: written, ms: Math.round(performance.now() - began) }, 'assignments pushed');
  }

  /**
   * Writes the reports of every node queued so far together, then those that came meanwhile, until
   * none wait: under load one write carries many nodes' reports in a few transactions, where a
   * write per call was a transaction per node and report.
   */
  private async writeStatus(): Promise<void> {
    while (this.statusQueue.length) {
      const batch = this.statusQueue;
      this.statusQueue = [];
      const err = await this.commitStatus(batch.map((b) => b.reports)).then(
        () => null,
        (e: ShoalError) => e,
      );
      for (const b of batch) b.done(err);
    }
    this.writingStatus = false;
  }

  /**
   * Tasks are read from the cache; a conflict means it was behind, and the retry reads it once it
   * shows everything etcd had applied.
   */
  private async commitStatus(reports: NodeReports[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.store.commit(statusWrites(reports, (id) => this.cache.get<Task__Output>('tasks', id)));
        return;
      } catch (err) {
        if (attempt >= STATUS_RETRIES || (err as ShoalError).code !== status.ABORTED) throw err;
        await this.cache.caughtUp();
      }
    }
  }

  private async expireSessions(): Promise<void> {
    const deadline = Date.now() - HEARTBEAT_PERIOD_MS * HEARTBEAT_MISSES;
    for (const s of [...this.sessions.values()]) {
      if (s.lastHeartbeat >= deadline) continue;
      this.log.warn({ nodeId: s.nodeId, silentMs: Date.now() - s.lastHeartbeat }, 'node missed its heartbeats; marking it down');
      this.sessions.delete(s.nodeId);
      s.call.end();
      this.endLogSubscriptions(s, 'missed its heartbeats');
      await this.closeSession(s, 'heartbeat failure');
    }
  }

  /**
   * A node marked down while its session here is alive (this manager's lease lapsed under load,
   * and the reaper saw no session) is Ready again with its next heartbeat, its session recorded anew.
   */
  private reviveIfDown(s: Session): void {
    if (this.cache.get<Node__Output>('nodes', s.nodeId)?.status?.state !== 'NODE_DOWN') return;
    void (async () => {
      await this.registry.open(s.nodeId, s.id);
      await this.markNode(s.nodeId, (n) => (this.sessions.get(s.nodeId) === s ? { ...n, status: { ...n.status!, state: 'NODE_READY', message: '', heartbeat_at: now() } } : n));
      this.log.info({ nodeId: s.nodeId }, 'node marked down while its session was alive is ready again');
    })().catch((err) => this.log.warn({ err, nodeId: s.nodeId }, 'marking node ready again failed'));
  }

  /**
   * A session that ends is forgotten if it is still the node's current session anywhere in the
   * cluster (the node may already have opened a new one with another manager). Its node is marked
   * down here only after missed heartbeats; a stream that just closed (the node restarting, or its
   * manager going away) leaves that to the leader's reaper, which gives the node the grace period
   * to open a new session before its tasks are replaced.
   */
  private async closeSession(s: Session, downBecause?: string): Promise<void> {
    try {
      if (!(await this.registry.close(s.nodeId, s.id)) || !downBecause) return;
      await this.markNode(s.nodeId, (n) => ({ ...n, status: { ...n.status!, state: 'NODE_DOWN', message: downBecause } }));
    } catch (err) {
      this.log.warn({ err, nodeId: s.nodeId }, 'marking node down failed');
    }
  }

  /**
   * The first try changes the node as the cache holds it, the others as etcd does: under load each
   * read from etcd was a round trip more in a session's opening, which nodes gave up waiting for.
   */
  private async markNode(nodeId: string, change: (n: Node__Output) => Node__Output): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const node = (attempt === 0 && this.cache.get<Node__Output>('nodes', nodeId)) || (await this.store.get<Node__Output>('nodes', nodeId));
      if (!node) throw failedPrecondition(`node ${nodeId} is not part of this cluster`);
      try {
        // A copy: commit sets the new version on what it writes, and the cache's objects are shared.
        await this.store.commit([{ type: 'update', kind: 'nodes', obj: { ...change(node) } }]);
        return;
      } catch (err) {
        if (attempt >= STATUS_RETRIES) throw err;
      }
    }
  }
}

/** A task on an overlay network (the ingress network too, when it publishes ports): its change may change other nodes' overlay state. */
const networked = (t: Task__Output) => (t.spec?.networks?.length ?? 0) > 0 || publishesPorts(t.endpoint);

/**
 * Whether a node's change may change what other nodes are told: the manager list (its role or
 * cluster address), or the overlay peers (its address; its removal). A new worker is news only to itself.
 */
function newsToOthers(change: Change): boolean {
  const before = change.before as Node__Output | undefined;
  const after = change.after as Node__Output | undefined;
  if (!after) return true;
  if (!before) return after.spec?.role === 'manager';
  return before.spec?.role !== after.spec?.role || before.manager_status?.addr !== after.manager_status?.addr || before.status?.addr !== after.status?.addr;
}

/** host:port of every manager's cluster endpoint, in a stable order. */
export function managerAddrs(nodes: Node__Output[]): string[] {
  return nodes
    .filter((n) => n.spec?.role === 'manager' && n.manager_status?.addr)
    .map((n) => n.manager_status!.addr)
    .sort();
}

/** The address part of grpc-js's peer string ("1.2.3.4:5678", "[::1]:5678"). */
function peerHost(peer: string): string {
  const m = /^\[?([^\]]+?)\]?:\d+$/.exec(peer);
  return m ? m[1] : '';
}
