import type { IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import type { Node__Output } from '../../gen/shoal/v1/Node';
import type { Service__Output } from '../../gen/shoal/v1/Service';
import type { Task__Output } from '../../gen/shoal/v1/Task';
import { status } from '@grpc/grpc-js';
import { hasCode, unavailable } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { settleWithin, STOP_COURTESY_MS } from '../../common/settle';
import { storeError } from './etcd-errors';
import { currentRevision, decode, type Fence, isKind, parseKey, ROOT, type Kind, type Op, type Store, type Versioned } from './store';

/** One object as it was before a change and as it is after (absent when created, or deleted). */
export interface Change {
  before?: Versioned;
  after?: Versioned;
}

/** The task a change of kind 'tasks' touched, as it was and as it is (one copy when created or deleted). */
export function changedTasks(change: Change | undefined): Task__Output[] {
  return [change?.before, change?.after].filter((t) => t !== undefined) as unknown as Task__Output[];
}

/** Called after the cache applied a change: one object, or everything ('reload', with no change). */
export type ChangeListener = (kind: Kind | 'reload', id: string, change?: Change) => void;

const RELOAD_RETRY_MS = 1000;
// A pass waits this long for the cache to show its own last writes before it gives up and retries.
const SETTLE_TIMEOUT_MS = 5000;

/** Everything loaded at one revision, with tasks indexed by service and by node. */
class Snapshot {
  readonly objects = new Map<Kind, Map<string, Versioned>>();
  readonly tasksByService = new Map<string, Map<string, Task__Output>>();
  readonly tasksByNode = new Map<string, Map<string, Task__Output>>();

  /** Stores the object; returns the one it replaces. */
  put(kv: IKeyValue): Versioned | undefined {
    const { kind, id } = parseKey(kv.key.toString());
    if (!isKind(kind)) return undefined;
    const before = this.remove(kind, id);
    const obj = decode(kv);
    let ofKind = this.objects.get(kind);
    if (!ofKind) this.objects.set(kind, (ofKind = new Map()));
    ofKind.set(id, obj);
    if (kind === 'tasks') {
      const t = obj as unknown as Task__Output;
      index(this.tasksByService, t.service_id, t);
      index(this.tasksByNode, t.node_id, t);
    }
    return before;
  }

  /** Forgets the object; returns it. */
  remove(kind: Kind, id: string): Versioned | undefined {
    const old = this.objects.get(kind)?.get(id);
    if (!old) return undefined;
    this.objects.get(kind)!.delete(id);
    if (kind === 'tasks') {
      const t = old as unknown as Task__Output;
      unindex(this.tasksByService, t.service_id, id);
      unindex(this.tasksByNode, t.node_id, id);
    }
    return old;
  }
}

function index(by: Map<string, Map<string, Task__Output>>, key: string, t: Task__Output): void {
  let group = by.get(key);
  if (!group) by.set(key, (group = new Map()));
  group.set(t.id, t);
}

function unindex(by: Map<string, Map<string, Task__Output>>, key: string, id: string): void {
  const group = by.get(key);
  group?.delete(id);
  if (group?.size === 0) by.delete(key);
}

/**
 * Every Store object (see KINDS) under the store's prefix, in memory: loaded at one revision, then kept current by
 * an etcd watch from the next revision, so the leader's loops read memory instead of listing
 * etcd on every pass. When the watch fails or cannot resume (its revision was compacted) the
 * cache loads everything again. Objects it returns are shared: read them, never change them.
 *
 * Writes go through commit(), which is Store.commit (compare-and-swap, as ever) plus a note of
 * the revisions written, so that settled() can wait until the cache shows them: a loop that
 * plans from a cache older than its own writes would, for one, create a slot's task twice. A
 * write that conflicts means the cache was stale; the newer write's event reaches the listeners
 * once applied, which runs the loop again on state that includes it.
 */
export class StoreCache {
  private snapshot = new Snapshot();
  private revision = 0;
  private written = 0;
  /** A write through commit() failed without saying it was not applied. */
  private uncertain = false;
  /** The live watch; undefined while (re)loading, when reads may be behind. */
  private watcher: Watcher | undefined;
  private loading: Promise<void> | undefined;
  private stopped = true;
  private readonly listeners = new Set<ChangeListener>();
  private waiters: { revision: number; resolve: () => void }[] = [];

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  /** The etcd revision the cache reflects; 0 until loaded. */
  get currentRevision(): number {
    return this.revision;
  }

  /** Loads everything and starts watching. Rejects (UNAVAILABLE) when etcd cannot be read. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.load();
  }

  /**
   * Loads everything again at etcd's current revision, retrying until it can: afterwards the
   * cache is as fresh as a read. A new leader does this first, since the watch may lag behind
   * what the previous leader wrote.
   */
  async refresh(): Promise<void> {
    await this.loading;
    const watcher = this.watcher;
    this.watcher = undefined;
    await watcher?.cancel().catch(() => undefined);
    await this.loadUntilDone();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const watcher = this.watcher;
    this.watcher = undefined;
    // A cancel the member cannot answer ends anyway when the client closes.
    await settleWithin(watcher?.cancel(), STOP_COURTESY_MS);
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get<T extends Versioned>(kind: Kind, id: string): T | undefined {
    return this.snapshot.objects.get(kind)?.get(id) as T | undefined;
  }

  list<T extends Versioned>(kind: Kind): T[] {
    return [...(this.snapshot.objects.get(kind)?.values() ?? [])] as T[];
  }

  services = (): Service__Output[] => this.list<Service__Output>('services');
  nodes = (): Node__Output[] => this.list<Node__Output>('nodes');
  tasks = (): Task__Output[] => this.list<Task__Output>('tasks');
  tasksOfService = (serviceId: string): Task__Output[] => [...(this.snapshot.tasksByService.get(serviceId)?.values() ?? [])];
  /** Tasks assigned to a node; '' gives the unassigned ones. */
  tasksOfNode = (nodeId: string): Task__Output[] => [...(this.snapshot.tasksByNode.get(nodeId)?.values() ?? [])];

  /** Set while this manager leads: the leader loops' writes then hold only while it still does. */
  fence: Fence | undefined;

  /** Store.commit, noting the revisions written so that settled() waits for them. */
  async commit(ops: Op[]): Promise<void> {
    try {
      await this.store.commit(ops, this.fence);
    } catch (err) {
      // Only a conflict says for sure that nothing was written; a write that got no answer may
      // have been applied, and a pass planned before the cache shows it would, for one, make a
      // slot's task twice (seen at 100,000 tasks with etcd slow to answer).
      if (!hasCode(err, status.ABORTED)) this.uncertain = true;
      throw err;
    } finally {
      // Ops of chunks that were written carry their new version; the others their old one.
      for (const op of ops) if (op.type !== 'delete') this.written = Math.max(this.written, op.obj.version);
    }
  }

  /** Resolves once the cache is loaded, watching, and shows every write made through commit(). */
  settled(): Promise<void> {
    if (this.uncertain) return this.catchUp().then(() => this.settled());
    const target = this.written;
    if (this.watcher && this.revision >= target) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = { revision: target, resolve: () => (clearTimeout(timer), resolve()) };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(unavailable(`the cluster store cache is behind (at revision ${this.revision}, waiting for ${target}); is etcd reachable?`));
      }, SETTLE_TIMEOUT_MS);
      this.waiters.push(waiter);
    });
  }

  /** Resolves once the cache shows every write etcd had applied when called: after a conflict showed it behind. */
  async caughtUp(): Promise<void> {
    await this.catchUp();
    await this.settled();
  }

  /** After a write whose outcome is unknown: settled() waits for etcd's current revision, which holds it if it was applied. */
  private async catchUp(): Promise<void> {
    this.written = Math.max(this.written, await currentRevision(this.store.etcd));
    this.uncertain = false;
  }

  /** Loads a snapshot and watches from its next revision; any earlier watcher is already gone. */
  private async load(): Promise<void> {
    // Page by page: decoding 100,000 tasks in one go held the manager's thread for seconds.
    const snapshot = new Snapshot();
    let revision = 0;
    for await (const page of this.store.pages(ROOT)) {
      for (const kv of page.kvs) snapshot.put(kv);
      revision = page.revision;
    }
    if (this.stopped) return;
    this.snapshot = snapshot;
    this.revision = Math.max(this.revision, revision);
    // The watch resumes right after the snapshot's revision; its listeners are on before it
    // connects, so no response can come before them. It covers every key, not only ROOT: a write
    // elsewhere (a manager's election key) moves etcd's revision too, and caughtUp() waits for
    // that revision, which a watch of ROOT alone would not reach until the next write under it.
    const watcher = this.store.etcd.watch().prefix('').startRevision(String(revision + 1)).watcher();
    this.watcher = watcher;
    let connected = false;
    const ready = new Promise<void>((resolve, reject) => {
      watcher.once('connected', () => {
        connected = true;
        resolve();
      });
      watcher.on('error', (err) => (connected ? void this.reload(watcher, err) : reject(err)));
    });
    watcher.on('data', (r: IWatchResponse) => this.apply(watcher, r));
    try {
      await ready;
    } catch (err) {
      // etcd cancelled the watch, and the client has dropped it: there is nothing to cancel.
      if (this.watcher === watcher) this.watcher = undefined;
      throw storeError(err);
    }
    this.wake();
    this.notify('reload', '');
  }

  /**
   * After etcd cancelled the watch (a compaction of the revision it would resume from, or an
   * error): loads everything again, retrying until it can. The client has already dropped the
   * cancelled watcher (cancelling it again would wait forever for its end).
   */
  private async reload(watcher: Watcher, err: unknown): Promise<void> {
    if (watcher !== this.watcher || this.stopped) return;
    this.watcher = undefined;
    this.log.warn({ err }, 'the cluster store watch was cancelled (compacted or failed); loading everything again');
    await this.loadUntilDone();
  }

  /** One load at a time; callers during one wait for it. */
  private loadUntilDone(): Promise<void> {
    this.loading ??= (async () => {
      while (!this.stopped) {
        try {
          return await this.load();
        } catch (err) {
          this.log.warn({ err }, 'loading the cluster store failed; retrying');
          await new Promise((r) => setTimeout(r, RELOAD_RETRY_MS));
        }
      }
    })().finally(() => (this.loading = undefined));
    return this.loading;
  }

  private apply(watcher: Watcher, res: IWatchResponse): void {
    if (watcher !== this.watcher) return;
    const changed: { kind: Kind; id: string; change: Change }[] = [];
    for (const ev of res.events) {
      const name = ev.kv.key.toString();
      if (!name.startsWith(ROOT)) continue;
      const key = parseKey(name);
      if (!isKind(key.kind)) continue;
      if (ev.type === 'Put') {
        const before = this.snapshot.put(ev.kv);
        changed.push({ ...key, change: { before, after: this.snapshot.objects.get(key.kind)!.get(key.id) } });
      } else {
        changed.push({ ...key, change: { before: this.snapshot.remove(key.kind, key.id) } });
      }
    }
    this.revision = Math.max(this.revision, Number(res.header.revision));
    this.wake();
    for (const { kind, id, change } of changed) this.notify(kind, id, change);
  }

  private wake(): void {
    if (!this.watcher) return;
    const ready = this.waiters.filter((w) => w.revision <= this.revision);
    this.waiters = this.waiters.filter((w) => w.revision > this.revision);
    for (const w of ready) w.resolve();
  }

  private notify(kind: Kind | 'reload', id: string, change?: Change): void {
    for (const listener of this.listeners) {
      try {
        listener(kind, id, change);
      } catch (err) {
        this.log.error({ err, kind, id }, 'a cache change listener failed');
      }
    }
  }
}
