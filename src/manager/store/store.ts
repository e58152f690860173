import { status } from '@grpc/grpc-js';
import type { Etcd3, IKeyValue } from 'etcd3';
import { aborted, failedPrecondition, notFound, resourceExhausted, type ShoalError } from '../../common/errors';
import { ETCD_MAX_REQUEST_BYTES, isTooLarge, storeError } from './etcd-errors';

/** The kinds of object shoal keeps in etcd, one key prefix each. */
export const KINDS = ['cluster', 'nodes', 'services', 'service-names', 'tasks', 'registry-auth', 'secrets', 'networks', 'network-ipam', 'task-networks', 'service-vips', 'node-ingress', 'published-ports'] as const;
export type Kind = (typeof KINDS)[number];

/** Whether a kind is one of the Store's objects (others under ROOT, such as leased sessions, are not JSON objects). */
export const isKind = (kind: string): kind is Kind => (KINDS as readonly string[]).includes(kind);

/** Every stored object has an id and carries its etcd mod revision as `version`. */
export interface Versioned {
  id: string;
  version: number;
}

/** One write in a transaction; create, update and delete are all conditional. */
export type Op =
  | { type: 'create'; kind: Kind; obj: Versioned }
  | { type: 'update'; kind: Kind; obj: Versioned }
  | { type: 'delete'; kind: Kind; id: string; version: number };

/** Every key shoal keeps in etcd is under this prefix: ROOT + kind + '/' + id. */
export const ROOT = '/shoal/v1/';

/**
 * A leader's writes carry its election key: the transaction holds only while that key exists
 * with the revision it was created at, so a deposed leader, still planning from what it last
 * saw, cannot write over its successor's decisions.
 */
export interface Fence {
  key: string;
  createRevision: number;
}
// etcd refuses transactions with more operations than --max-txn-ops (128 by default), and
// requests larger than --max-request-bytes (1.5 MiB by default). A chunk stays under both with
// room for etcd's own framing; an object larger than the byte budget goes in a chunk of its own,
// so only its write can fail.
export const MAX_OPS_PER_TXN = 100;
export const MAX_TXN_BYTES = 1024 * 1024;
// A compare and a request header per op, beyond its key (sent twice) and value.
const OP_OVERHEAD_BYTES = 32;
// Transactions of one wave in flight at once: etcd puts concurrent requests in one raft entry and
// one fsync, where one at a time each waits for its own (1,000 tasks were 10 round trips in a row).
export const MAX_TXNS_IN_FLIGHT = 8;

const keyOf = (kind: Kind, id: string) => `${ROOT}${kind}/${id}`;

/** etcd's revision now: every write it has applied is at or below it. */
export async function currentRevision(etcd: Etcd3): Promise<number> {
  const res = await etcd
    .get(ROOT)
    .exec()
    .catch((err) => {
      throw storeError(err);
    });
  return Number(res.header.revision);
}

/** Keys read per request by Store.range. */
export const LIST_PAGE_KEYS = 500;

/** The first key after every key with this prefix (its last byte plus one; shoal's prefixes end in ASCII). */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1]++;
  return end;
}

/** The kind and id a key under ROOT names. */
export function parseKey(key: string): { kind: Kind; id: string } {
  const [kind, id] = key.slice(ROOT.length).split('/');
  return { kind: kind as Kind, id };
}

/** A stored object, its version set from the key's mod revision. */
export function decode<T extends Versioned>(kv: IKeyValue): T {
  const obj = JSON.parse(kv.value.toString()) as T;
  obj.version = Number(kv.mod_revision);
  return obj;
}

function encode(obj: Versioned): string {
  const { version: _version, ...rest } = obj;
  return JSON.stringify(rest);
}

/** An op with its key and stored value worked out once, and what it adds to a request. */
interface EncodedOp {
  op: Op;
  key: string;
  value?: string;
  bytes: number;
}

function encodeOp(op: Op): EncodedOp {
  const key = keyOf(op.kind, op.type === 'delete' ? op.id : op.obj.id);
  const value = op.type === 'delete' ? undefined : encode(op.obj);
  return { op, key, value, bytes: 2 * Buffer.byteLength(key) + (value === undefined ? 0 : Buffer.byteLength(value)) + OP_OVERHEAD_BYTES };
}

/** Splits ops, in order, into runs of at most MAX_OPS_PER_TXN ops and MAX_TXN_BYTES bytes. */
export function chunkBySize<T extends { bytes: number }>(items: T[], maxOps = MAX_OPS_PER_TXN, maxBytes = MAX_TXN_BYTES): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    if (current.length && (current.length >= maxOps || bytes + item.bytes > maxBytes)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += item.bytes;
  }
  if (current.length) chunks.push(current);
  return chunks;
}

/**
 * Chunks grouped into waves to commit one after the other, the chunks of a wave at once: a run
 * of chunks that each hold only creates, only updates or only deletes is one wave, and a mixed
 * chunk is a wave of its own. So every op is committed after every op of another type listed
 * before it (a slot's new task exists before its old one is shut down), as committed in order.
 */
export function commitWaves<T extends { op: Pick<Op, 'type'> }>(chunks: T[][]): T[][][] {
  const waves: { type: string | undefined; chunks: T[][] }[] = [];
  for (const chunk of chunks) {
    const type = chunk.every((c) => c.op.type === chunk[0].op.type) ? chunk[0].op.type : undefined;
    const last = waves[waves.length - 1];
    if (type && last?.type === type) last.chunks.push(chunk);
    else waves.push({ type, chunks: [chunk] });
  }
  return waves.map((w) => w.chunks);
}

/**
 * Cluster state in etcd. Every write is a compare-and-swap on the object's version (its etcd
 * mod revision), so a stale writer — a retry, or a second manager — fails instead of
 * overwriting newer state.
 */
export class Store {
  constructor(readonly etcd: Etcd3) {}

  async get<T extends Versioned>(kind: Kind, id: string): Promise<T | null> {
    const res = await this.etcd
      .get(keyOf(kind, id))
      .exec()
      .catch((err) => {
        throw storeError(err);
      });
    return res.kvs.length ? decode<T>(res.kvs[0]) : null;
  }

  async mustGet<T extends Versioned>(kind: Kind, id: string, what: string): Promise<T> {
    const obj = await this.get<T>(kind, id);
    if (!obj) throw notFound(`${what} ${id} not found`);
    return obj;
  }

  async list<T extends Versioned>(kind: Kind): Promise<T[]> {
    return (await this.range(`${ROOT}${kind}/`)).kvs.map((kv) => decode<T>(kv));
  }

  /**
   * Every key under the prefix, read in pages of LIST_PAGE_KEYS at the revision of the first:
   * one answer for a whole store of 100,000 tasks (45 MB) is past what a gRPC client takes.
   */
  async range(prefix: string): Promise<{ kvs: IKeyValue[]; revision: number }> {
    const kvs: IKeyValue[] = [];
    let revision = 0;
    for await (const page of this.pages(prefix)) {
      kvs.push(...page.kvs);
      revision = page.revision;
    }
    return { kvs, revision };
  }

  /** range() a page at a time, for a reader that works through each before the next arrives. */
  async *pages(prefix: string): AsyncGenerator<{ kvs: IKeyValue[]; revision: number }> {
    const end = prefixEnd(prefix);
    let start: Buffer = Buffer.from(prefix);
    let revision: number | undefined;
    for (;;) {
      const page = this.etcd.getAll().inRange({ start, end }).limit(LIST_PAGE_KEYS);
      const res = await (revision === undefined ? page : page.revision(revision)).exec().catch((err) => {
        throw storeError(err);
      });
      revision ??= Number(res.header.revision);
      yield { kvs: res.kvs, revision };
      if (!res.more || !res.kvs.length) return;
      start = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
    }
  }

  /**
   * Applies ops in chunks of at most MAX_OPS_PER_TXN ops and MAX_TXN_BYTES bytes, each chunk
   * atomic, in waves (commitWaves: no op before one of another type listed earlier), and sets
   * the new version on every created or updated object. Every chunk is tried even when another
   * one fails, so one object that etcd refuses does not hold back the others; then a failure is
   * thrown, one other than a conflict (ABORTED) if any.
   */
  async commit(ops: Op[], fence?: Fence): Promise<void> {
    const failures: ShoalError[] = [];
    for (const wave of commitWaves(chunkBySize(ops.map(encodeOp)))) {
      let next = 0;
      const worker = async () => {
        while (next < wave.length) {
          const chunk = wave[next++];
          await this.commitChunk(chunk, fence).catch((err) => failures.push(storeError(err)));
        }
      };
      await Promise.all(Array.from({ length: Math.min(MAX_TXNS_IN_FLIGHT, wave.length) }, worker));
    }
    if (failures.length) throw failures.find((f) => f.code !== status.ABORTED) ?? failures[0];
  }

  private async commitChunk(chunk: EncodedOp[], fence?: Fence): Promise<void> {
    const compares = chunk.map(({ op, key }): [string, 'Create' | 'Mod', number] => {
      if (op.type === 'create') return [key, 'Create', 0];
      if (op.type === 'update') return [key, 'Mod', op.obj.version];
      return [key, 'Mod', op.version];
    });
    let txn = this.etcd.if(compares[0][0], compares[0][1], '==', compares[0][2]);
    for (const [key, column, value] of compares.slice(1)) txn = txn.and(key, column, '==', value);
    if (fence) txn = txn.and(fence.key, 'Create', '==', fence.createRevision);
    const writes = chunk.map(({ key, value }) => (value === undefined ? this.etcd.delete().key(key) : this.etcd.put(key).value(value)));
    const res = await txn
      .then(...writes)
      .commit()
      .catch((err) => {
        throw chunk.length === 1 && isTooLarge(err) ? tooLarge(chunk[0]) : err;
      });
    const ops = chunk.map((c) => c.op);
    if (!res.succeeded && fence && !(await this.holds(fence))) throw deposed();
    if (!res.succeeded) throw aborted(conflictMessage(ops));
    const revision = Number(res.header.revision);
    for (const op of ops) if (op.type !== 'delete') op.obj.version = revision;
  }

  private async holds(fence: Fence): Promise<boolean> {
    const res = await this.etcd.get(fence.key).exec();
    return res.kvs.length === 1 && Number(res.kvs[0].create_revision) === fence.createRevision;
  }

  /** Calls onChange for every put or delete under the shoal prefix; returns a stop function. */
  async watch(onChange: (kind: Kind, id: string) => void): Promise<() => Promise<void>> {
    const watcher = await this.etcd.watch().prefix(ROOT).create();
    const handle = (kv: IKeyValue) => {
      const { kind, id } = parseKey(kv.key.toString());
      onChange(kind, id);
    };
    watcher.on('put', handle);
    watcher.on('delete', handle);
    return () => watcher.cancel();
  }
}

const singular = (kind: Kind) => kind.replace(/s$/, '');

function tooLarge({ op, key, bytes }: EncodedOp): ShoalError {
  const what = `${singular(op.kind)} ${key.slice(key.lastIndexOf('/') + 1)}`;
  const mib = (n: number) => `${(n / 1024 / 1024).toFixed(2)} MiB`;
  return resourceExhausted(`${what} is too large for the cluster store: ${mib(bytes)} encoded, and etcd takes at most ${mib(ETCD_MAX_REQUEST_BYTES)} per request`);
}

const deposed = () => failedPrecondition('this manager is no longer the leader; the write it planned was refused');

function conflictMessage(ops: Op[]): string {
  if (ops.length === 1) {
    const op = ops[0];
    const id = op.type === 'delete' ? op.id : op.obj.id;
    if (op.type === 'create') return `${singular(op.kind)} ${id} already exists`;
    return `${singular(op.kind)} ${id} was changed by someone else; read it again and retry`;
  }
  return `the update conflicted with a concurrent change to ${ops.length} objects; retry`;
}
