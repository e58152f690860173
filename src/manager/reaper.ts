import type { Etcd3 } from 'etcd3';
import type { Node__Output } from '../gen/shoal/v1/Node';
import type { Logger } from '../common/logger';
import { HEARTBEAT_MISSES, HEARTBEAT_PERIOD_MS } from './dispatcher/dispatcher';
import { connectedNodes } from './dispatcher/sessions';
import { updateNodeWithRetry } from './nodes';
import type { StoreCache } from './store/cache';
import type { Store } from './store/store';

/** How long a Ready node may be without a session at any manager before it is Down. */
export const NO_SESSION_GRACE_MS = HEARTBEAT_PERIOD_MS;
/**
 * A new leader marks nothing down for this long: every node was connected to the managers that
 * just went (or to this one, restarting), and gets the heartbeat grace to find a manager again.
 */
export const NEW_LEADER_GRACE_MS = HEARTBEAT_PERIOD_MS * HEARTBEAT_MISSES;

/**
 * Nodes that claim to be Ready but whose session no live manager holds, for longer than the grace:
 * their manager died with them, or their link did. Pure: `missingSince` is the caller's memory.
 */
export function nodesToMarkDown(nodes: Node__Output[], connected: Set<string>, missingSince: Map<string, number>, nowMs: number, graceMs: number, notBeforeMs = 0): string[] {
  const down: string[] = [];
  const seen = new Set<string>();
  for (const n of nodes) {
    if (n.status?.state !== 'NODE_READY' || connected.has(n.id)) continue;
    seen.add(n.id);
    const since = missingSince.get(n.id) ?? nowMs;
    missingSince.set(n.id, since);
    if (nowMs - since >= graceMs && nowMs >= notBeforeMs) down.push(n.id);
  }
  for (const id of [...missingSince.keys()]) if (!seen.has(id)) missingSince.delete(id);
  return down;
}

/**
 * The leader's node reaper. A dispatcher marks its own sessions' nodes down when heartbeats stop;
 * this catches the nodes whose dispatcher is gone too (a manager host that died with its worker).
 */
export class Reaper {
  private readonly missingSince = new Map<string, number>();
  private notBeforeMs = 0;

  constructor(
    private readonly store: Store,
    /** The nodes are read here: listing a thousand from etcd every second cost the leader more than the rest of the reaper. */
    private readonly cache: StoreCache,
    private readonly etcd: Etcd3,
    private readonly log: Logger,
  ) {}

  /** One pass; returns when to look again. */
  async pass(): Promise<number> {
    const connected = await connectedNodes(this.etcd);
    const nodes = this.cache.nodes();
    const nowMs = Date.now();
    for (const id of nodesToMarkDown(nodes, connected, this.missingSince, nowMs, NO_SESSION_GRACE_MS, this.notBeforeMs)) {
      this.log.warn({ nodeId: id }, 'node has no session with any manager; marking it down');
      await updateNodeWithRetry(this.store, id, (n) =>
        n.status?.state === 'NODE_READY' ? { ...n, status: { ...n.status, state: 'NODE_DOWN', message: 'heartbeat failure: no manager has a session with it' } } : n,
      );
      this.missingSince.delete(id);
    }
    return nowMs + Math.min(NO_SESSION_GRACE_MS, 1000);
  }

  /** A new leader starts counting afresh: it cannot know how long a node was already missing. */
  reset(): void {
    this.missingSince.clear();
    this.notBeforeMs = Date.now() + NEW_LEADER_GRACE_MS;
  }
}
