import type { Etcd3, Lease } from 'etcd3';
import type { Logger } from '../../common/logger';
import { settleWithin, STOP_COURTESY_MS } from '../../common/settle';
import { storeError } from '../store/etcd-errors';

// Outside the object prefix (/shoal/v1/): these are lease-bound markers, not stored objects.
const SESSIONS = '/shoal/live/sessions/';
const MANAGERS_ALIVE = '/shoal/live/managers/';
/** A manager that stops answering loses its sessions and its presence after this long. */
export const MANAGER_LEASE_TTL_S = 5;
const RENEW_RETRY_MIN_MS = 100;
const RENEW_RETRY_MAX_MS = 2000;

/**
 * Which manager holds each node's dispatcher session, in etcd under this manager's lease: when a
 * manager dies its lease expires and its sessions vanish, so the leader's reaper can tell a node
 * nobody answers for (down) from a node connected elsewhere. The same lease marks the manager
 * itself reachable.
 */
export class SessionRegistry {
  private lease: Lease | undefined;
  /** The sessions this manager holds, to record again under a new lease if the old one is lost. */
  private readonly held = new Map<string, string>();
  private renewTimer: NodeJS.Timeout | undefined;
  private retryMs = 0;

  constructor(
    private readonly etcd: Etcd3,
    readonly managerId: string,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.renewLease();
    await this.lease!.put(`${MANAGERS_ALIVE}${this.managerId}`).value('1').exec();
  }

  private renewLease(): void {
    const lease = this.etcd.lease(MANAGER_LEASE_TTL_S, { autoKeepAlive: true });
    this.lease = lease;
    lease.on('lost', (err) => {
      if (this.lease !== lease) return;
      // A lease is lost at once when etcd cannot grant one; without a pause that is a busy loop.
      this.retryMs = Math.min(this.retryMs * 2 || RENEW_RETRY_MIN_MS, RENEW_RETRY_MAX_MS);
      this.log.warn({ err: err.message, sessions: this.held.size, retryInMs: this.retryMs }, 'manager lease lost; taking a new one and recording its sessions again');
      this.renewTimer = setTimeout(() => {
        if (this.lease !== lease) return;
        this.renewLease();
        this.recordAll().then(
          () => (this.retryMs = 0),
          (e) => this.log.warn({ err: e }, 'recording sessions under the new lease failed'),
        );
      }, this.retryMs);
    });
  }

  async stop(): Promise<void> {
    clearTimeout(this.renewTimer);
    const lease = this.lease;
    this.lease = undefined;
    // Revoking ends this manager's sessions at once rather than when the lease runs out.
    await settleWithin(lease?.revoke(), STOP_COURTESY_MS);
  }

  private async recordAll(): Promise<void> {
    const lease = this.lease!;
    await lease.put(`${MANAGERS_ALIVE}${this.managerId}`).value('1').exec();
    // All at once: one after the other, a thousand sessions took longer than the reaper's grace,
    // and nodes whose sessions were alive were marked down and their tasks replaced.
    await Promise.all([...this.held].map(([nodeId, sessionId]) => lease.put(`${SESSIONS}${nodeId}`).value(this.marker(sessionId)).exec()));
  }

  /** Records that this manager now holds the node's session. */
  async open(nodeId: string, sessionId: string): Promise<void> {
    this.held.set(nodeId, sessionId);
    await this.lease!.put(`${SESSIONS}${nodeId}`).value(this.marker(sessionId)).exec();
  }

  /** Forgets the session if it is still the node's current one; says whether it was. */
  async close(nodeId: string, sessionId: string): Promise<boolean> {
    if (this.held.get(nodeId) === sessionId) this.held.delete(nodeId);
    const key = `${SESSIONS}${nodeId}`;
    const res = await this.etcd.if(key, 'Value', '==', this.marker(sessionId)).then(this.etcd.delete().key(key)).commit();
    return res.succeeded;
  }

  /** The manager holding the node's session, if any live manager does. */
  async holder(nodeId: string): Promise<string | undefined> {
    const value = await this.etcd.get(`${SESSIONS}${nodeId}`).string().catch((err) => Promise.reject(storeError(err)));
    return value ? value.slice(0, value.indexOf('/')) : undefined;
  }

  /** A session's marker names its manager too, so another manager can find where the node is served. */
  private marker(sessionId: string): string {
    return `${this.managerId}/${sessionId}`;
  }
}

/** Nodes that have a session with some live manager. */
export const connectedNodes = (etcd: Etcd3): Promise<Set<string>> => idsUnder(etcd, SESSIONS);

/** Managers whose shoald holds its lease: reachable. */
export const reachableManagers = (etcd: Etcd3): Promise<Set<string>> => idsUnder(etcd, MANAGERS_ALIVE);

async function idsUnder(etcd: Etcd3, prefix: string): Promise<Set<string>> {
  const keys = await etcd.getAll().prefix(prefix).keys().catch((err) => Promise.reject(storeError(err)));
  return new Set(keys.map((k) => k.slice(prefix.length)));
}
