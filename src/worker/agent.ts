import * as grpc from '@grpc/grpc-js';
import type { DispatcherClient } from '../gen/shoal/v1/Dispatcher';
import type { NodeDescription } from '../gen/shoal/v1/NodeDescription';
import type { SessionMessage__Output } from '../gen/shoal/v1/SessionMessage';
import type { LogSubscription__Output } from '../gen/shoal/v1/LogSubscription';
import type { TaskStatus } from '../gen/shoal/v1/TaskStatus';
import type { TaskStatusUpdate } from '../gen/shoal/v1/TaskStatusUpdate';
import type { LogLine } from '../gen/shoal/v1/LogLine';
import type { Logger } from '../common/logger';
import { grpcTarget, shoalProto } from '../common/proto';
import type { Task__Output } from '../gen/shoal/v1/Task';
import { applyAssignments } from './assignments';
import type { Executor } from './executor';

/** What the agent hands the node's work to. */
export type AgentExecutor = Pick<Executor, 'setNetworks' | 'setAssignments' | 'logPath'>;
import { readTaskLog } from './task-logs';

/** TLS for the node's dispatcher connection: its certificate may be renewed while the agent runs. */
export type ChannelCredentials = () => { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions };

export interface AgentOptions {
  /** host:port of the managers to try, preferred first; the dispatcher's list replaces it. */
  managers: string[];
  credentials: ChannelCredentials;
  description: NodeDescription;
  executor: AgentExecutor;
  /** The managers as the dispatcher last listed them, to remember across restarts. */
  onManagers(managers: string[]): void;
  /** The cluster wants this node in another role (promote/demote). */
  onDesiredRole(role: string): void;
  /** The node was removed from the cluster. */
  onRemoved(): void;
  log: Logger;
  /** How long a manager may take to open a session before the agent tries the next one. */
  sessionOpenTimeoutMs?: number;
}

const STATUS_FLUSH_MS = 20;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;
const LOG_BATCH_LINES = 500;
const SESSION_OPEN_TIMEOUT_MS = 10_000;
/** Heartbeats that may fail in a row (the manager unreachable, the stream still looking open) before the session is given up. */
const HEARTBEAT_FAILURES = 3;

/**
 * The worker's side of the dispatcher session: registers, heartbeats, hands assignments to the
 * executor, batches task status reports, and serves log subscriptions. Reconnects on its own.
 */
export class Agent {
  private client: DispatcherClient | undefined;
  private managers: string[];
  private next = 0;
  private addr = '';
  private session: grpc.ClientReadableStream<SessionMessage__Output> | undefined;
  private sessionId = '';
  /** The task set the session's messages add up to. */
  private assigned = new Map<string, Task__Output>();
  private heartbeat: NodeJS.Timeout | undefined;
  private heartbeatFailures = 0;
  private reconnectDelay = RECONNECT_MIN_MS;
  private stopped = false;
  private queue = new Map<string, TaskStatus>();
  private flushing = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly logReaders = new Map<string, AbortController>();

  constructor(private readonly opts: AgentOptions) {
    this.managers = [...opts.managers];
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.flushTimer);
    this.session?.cancel();
    for (const c of this.logReaders.values()) c.abort();
    this.client?.close();
  }

  /** The manager this agent talks to now, if a session is open. */
  get manager(): string {
    return this.sessionId ? this.addr : '';
  }

  /** Queues a status report; reports for one task coalesce to the latest. */
  report(taskId: string, status: TaskStatus): void {
    this.queue.set(taskId, status);
    if (!this.flushTimer) this.flushTimer = setTimeout(() => void this.flush(), STATUS_FLUSH_MS);
  }

  /**
   * Opens a session with the next manager in the list: after a failure the agent moves on, so a
   * dead manager costs one reconnect, and the containers keep running meanwhile.
   */
  private connect(): void {
    if (this.stopped) return;
    if (!this.managers.length) {
      this.opts.log.error('no manager to connect to');
      return;
    }
    const addr = this.managers[this.next % this.managers.length];
    this.next = (this.next + 1) % this.managers.length;
    this.addr = addr;
    const { credentials, options } = this.opts.credentials();
    this.client?.close();
    const client = new (shoalProto().Dispatcher)(grpcTarget(addr), credentials, options);
    this.client = client;
    const call = client.Session({ description: this.opts.description });
    this.session = call;
    this.opts.log.debug({ manager: addr }, 'opening dispatcher session');
    // A manager that accepts the stream but cannot open the session (its store has no quorum, its
    // connection half-open) would otherwise hold this node without a session for good.
    const opening = setTimeout(() => {
      this.opts.log.warn({ manager: addr, ms: this.openTimeoutMs }, 'manager did not open a dispatcher session in time; trying the next');
      call.cancel();
    }, this.openTimeoutMs);
    opening.unref();
    let ended = false;
    // 'error' need not be followed by 'close', nor 'close' preceded by 'error': whichever comes first
    // ends the session, once.
    const end = () => {
      if (ended) return;
      ended = true;
      clearTimeout(opening);
      call.cancel();
      if (this.session !== call) return;
      this.session = undefined;
      this.sessionId = '';
      clearInterval(this.heartbeat);
      if (this.stopped) return;
      setTimeout(() => this.connect(), this.reconnectDelay).unref();
      // Backing off only once every manager has been tried: the next one is likely alive.
      if (this.next === 0) this.reconnectDelay = Math.min(this.reconnectDelay * 2, RECONNECT_MAX_MS);
    };
    call.on('data', (msg: SessionMessage__Output) => {
      clearTimeout(opening);
      if (this.session === call) this.onMessage(msg);
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (err.code !== grpc.status.CANCELLED) this.opts.log.warn({ err: err.details || err.message, manager: addr }, 'dispatcher session failed');
      end();
    });
    call.on('end', end);
    call.on('close', end);
  }

  private get openTimeoutMs(): number {
    return this.opts.sessionOpenTimeoutMs ?? SESSION_OPEN_TIMEOUT_MS;
  }

  private onMessage(msg: SessionMessage__Output): void {
    if (msg.session_id !== this.sessionId) {
      this.sessionId = msg.session_id;
      this.reconnectDelay = RECONNECT_MIN_MS;
      this.heartbeatFailures = 0;
      this.opts.log.info({ sessionId: msg.session_id, manager: this.addr }, 'dispatcher session established');
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => this.sendHeartbeat(), Number(msg.heartbeat_period_ms) || 5000);
      this.heartbeat.unref();
      if (this.queue.size) void this.flush();
    }
    if (msg.removed) return this.opts.onRemoved();
    if (msg.managers.length) this.updateManagers(msg.managers);
    if (msg.desired_role) this.opts.onDesiredRole(msg.desired_role);
    if (msg.assignments) {
      // First: the tasks it comes with are made on these networks.
      if (msg.assignments.networks) this.opts.executor.setNetworks(msg.assignments.networks);
      this.assigned = applyAssignments(this.assigned, msg.assignments);
      this.opts.executor.setAssignments([...this.assigned.values()], msg.assignments.registry_auth);
    }
    if (msg.log_subscription) this.serveLogs(msg.log_subscription);
    if (msg.cancel_log_subscription) this.logReaders.get(msg.cancel_log_subscription)?.abort();
  }

  /** Keeps the manager being talked to where it is in the new list, so the rotation continues from it. */
  private updateManagers(managers: string[]): void {
    if (managers.join(',') === this.managers.join(',')) return;
    this.managers = [...managers];
    const at = managers.indexOf(this.addr);
    this.next = at >= 0 ? (at + 1) % managers.length : 0;
    this.opts.onManagers(managers);
  }

  /**
   * A manager that no longer holds this session (restarted, or it gave the session up) says so to
   * the heartbeat, while the stream may still look open: the agent then opens a new one.
   */
  private sendHeartbeat(): void {
    const call = this.session;
    this.client?.Heartbeat({ session_id: this.sessionId }, (err) => {
      if (!err) {
        this.heartbeatFailures = 0;
        return;
      }
      this.opts.log.warn({ err: err.details, manager: this.addr }, 'heartbeat failed');
      const gone = err.code === grpc.status.FAILED_PRECONDITION || ++this.heartbeatFailures >= HEARTBEAT_FAILURES;
      if (gone && call && this.session === call) {
        this.opts.log.warn({ manager: this.addr }, 'giving up the dispatcher session; opening a new one');
        call.cancel();
      }
    });
  }

  private async flush(): Promise<void> {
    this.flushTimer = undefined;
    if (this.flushing || !this.sessionId || !this.queue.size) return;
    this.flushing = true;
    const batch = this.queue;
    this.queue = new Map();
    const updates: TaskStatusUpdate[] = [...batch].map(([task_id, status]) => ({ task_id, status }));
    const req = { session_id: this.sessionId, updates };
    const err = await new Promise<grpc.ServiceError | null>((resolve) => this.client!.UpdateTaskStatus(req, (e) => resolve(e)));
    this.flushing = false;
    if (err) {
      this.opts.log.warn({ err: err.details }, 'status report failed; will resend');
      for (const [id, status] of batch) if (!this.queue.has(id)) this.queue.set(id, status);
      this.flushTimer = setTimeout(() => void this.flush(), 500);
    } else if (this.queue.size) {
      void this.flush();
    }
  }

  private serveLogs(sub: LogSubscription__Output): void {
    const abort = new AbortController();
    this.logReaders.set(sub.id, abort);
    const stream = this.client!.PublishLogs(() => undefined);
    const send = (lines: LogLine[]) => {
      for (let i = 0; i < lines.length; i += LOG_BATCH_LINES) {
        stream.write({ subscription_id: sub.id, lines: lines.slice(i, i + LOG_BATCH_LINES) });
      }
    };
    const readers = sub.task_ids.map((id) =>
      readTaskLog(this.opts.executor.logPath(id), id, { tail: Number(sub.tail), follow: sub.follow, sinceMs: Number(sub.since_ms), signal: abort.signal }, send),
    );
    Promise.all(readers)
      .then(
        () => stream.write({ subscription_id: sub.id, close: true }),
        (err) => stream.write({ subscription_id: sub.id, close: true, err: `reading task logs failed: ${(err as Error).message}` }),
      )
      .finally(() => {
        stream.end();
        this.logReaders.delete(sub.id);
      });
  }
}
