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
import type { Executor } from './executor';
import { readTaskLog } from './task-logs';

export interface AgentOptions {
  /** The dispatcher's address: a unix socket path or host:port. */
  dispatcher: string;
  nodeId: string;
  description: NodeDescription;
  executor: Executor;
  log: Logger;
}

const STATUS_FLUSH_MS = 20;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;
const LOG_BATCH_LINES = 500;

/**
 * The worker's side of the dispatcher session: registers, heartbeats, hands assignments to the
 * executor, batches task status reports, and serves log subscriptions. Reconnects on its own.
 */
export class Agent {
  private readonly client: DispatcherClient;
  private session: grpc.ClientReadableStream<SessionMessage__Output> | undefined;
  private sessionId = '';
  private heartbeat: NodeJS.Timeout | undefined;
  private reconnectDelay = RECONNECT_MIN_MS;
  private stopped = false;
  private queue = new Map<string, TaskStatus>();
  private flushing = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly logReaders = new Map<string, AbortController>();

  constructor(private readonly opts: AgentOptions) {
    const Dispatcher = shoalProto().Dispatcher;
    this.client = new Dispatcher(grpcTarget(opts.dispatcher), grpc.credentials.createInsecure());
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
    this.client.close();
  }

  /** Queues a status report; reports for one task coalesce to the latest. */
  report(taskId: string, status: TaskStatus): void {
    this.queue.set(taskId, status);
    if (!this.flushTimer) this.flushTimer = setTimeout(() => void this.flush(), STATUS_FLUSH_MS);
  }

  private connect(): void {
    if (this.stopped) return;
    const { nodeId, description } = this.opts;
    const call = this.client.Session({ node_id: nodeId, description, addr: '' });
    this.session = call;
    call.on('data', (msg: SessionMessage__Output) => this.onMessage(msg));
    call.on('error', (err: grpc.ServiceError) => {
      if (err.code !== grpc.status.CANCELLED) this.opts.log.warn({ err: err.details || err.message }, 'dispatcher session failed');
    });
    call.on('close', () => {
      if (this.session !== call) return;
      this.sessionId = '';
      clearInterval(this.heartbeat);
      if (this.stopped) return;
      setTimeout(() => this.connect(), this.reconnectDelay).unref();
      this.reconnectDelay = Math.min(this.reconnectDelay * 2, RECONNECT_MAX_MS);
    });
  }

  private onMessage(msg: SessionMessage__Output): void {
    if (msg.session_id !== this.sessionId) {
      this.sessionId = msg.session_id;
      this.reconnectDelay = RECONNECT_MIN_MS;
      this.opts.log.info({ sessionId: msg.session_id }, 'dispatcher session established');
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => this.sendHeartbeat(), Number(msg.heartbeat_period_ms) || 5000);
      this.heartbeat.unref();
      if (this.queue.size) void this.flush();
    }
    if (msg.assignments) this.opts.executor.setAssignments(msg.assignments.tasks, msg.assignments.registry_auth);
    if (msg.log_subscription) this.serveLogs(msg.log_subscription);
    if (msg.cancel_log_subscription) this.logReaders.get(msg.cancel_log_subscription)?.abort();
  }

  private sendHeartbeat(): void {
    this.client.Heartbeat({ node_id: this.opts.nodeId, session_id: this.sessionId }, (err) => {
      if (err) this.opts.log.warn({ err: err.details }, 'heartbeat failed');
    });
  }

  private async flush(): Promise<void> {
    this.flushTimer = undefined;
    if (this.flushing || !this.sessionId || !this.queue.size) return;
    this.flushing = true;
    const batch = this.queue;
    this.queue = new Map();
    const updates: TaskStatusUpdate[] = [...batch].map(([task_id, status]) => ({ task_id, status }));
    const req = { node_id: this.opts.nodeId, session_id: this.sessionId, updates };
    const err = await new Promise<grpc.ServiceError | null>((resolve) => this.client.UpdateTaskStatus(req, (e) => resolve(e)));
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
    const stream = this.client.PublishLogs(() => undefined);
    const send = (lines: LogLine[]) => {
      for (let i = 0; i < lines.length; i += LOG_BATCH_LINES) {
        stream.write({ subscription_id: sub.id, lines: lines.slice(i, i + LOG_BATCH_LINES) });
      }
    };
    const readers = sub.task_ids.map((id) =>
      readTaskLog(this.opts.executor.logPath(id), id, { tail: Number(sub.tail), follow: sub.follow, signal: abort.signal }, send),
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
