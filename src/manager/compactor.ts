import type { Etcd3 } from 'etcd3';
import type { Logger } from '../common/logger';
import { currentRevision } from './store/store';

/**
 * How often the leader compacts etcd's history, keeping one interval of it (as kube-apiserver
 * does every 5 minutes): every write of every task keeps a revision until compacted, and a
 * 100,000-task cluster writes about six per task each time it scales up and down.
 */
export const COMPACTION_INTERVAL_MS = 60_000;

/** A revision and when it was current. */
export interface RevisionMark {
  at: number;
  revision: number;
}

/**
 * What to compact to now, if anything: the revision that was current one interval ago. History
 * newer than that stays, so a watcher that fell behind by less than an interval (the managers'
 * caches are milliseconds behind) resumes without a reload. Pure.
 */
export function compactionTarget(mark: RevisionMark | undefined, compacted: number, nowMs: number, intervalMs: number): number | undefined {
  if (!mark || nowMs - mark.at < intervalMs || mark.revision <= compacted) return undefined;
  return mark.revision;
}

/**
 * The leader's etcd compaction: every interval it notes the current revision and compacts to the
 * one it noted the interval before. A new leader starts noting afresh.
 */
export class Compactor {
  private mark: RevisionMark | undefined;
  private compacted = 0;

  constructor(
    private readonly etcd: Etcd3,
    private readonly log: Logger,
    private readonly intervalMs = COMPACTION_INTERVAL_MS,
  ) {}

  /** One pass; returns when to look again. */
  async pass(): Promise<number> {
    const nowMs = Date.now();
    if (this.mark && nowMs - this.mark.at < this.intervalMs) return this.mark.at + this.intervalMs;
    const revision = await currentRevision(this.etcd);
    const target = compactionTarget(this.mark, this.compacted, nowMs, this.intervalMs);
    if (target !== undefined) {
      try {
        await this.etcd.kv.compact({ revision: String(target) });
        this.log.info({ revision: target }, 'compacted the cluster store history');
      } catch (err) {
        // Another manager, leading before this one, compacted past it already.
        if (!/required revision has been compacted/.test((err as Error).message)) throw err;
      }
      this.compacted = target;
    }
    this.mark = { at: nowMs, revision };
    return nowMs + this.intervalMs;
  }

  reset(): void {
    this.mark = undefined;
  }
}
