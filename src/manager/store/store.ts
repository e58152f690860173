import type { Etcd3, IKeyValue } from 'etcd3';
import { aborted, notFound } from '../../common/errors';

/** The kinds of object shoal keeps in etcd, one key prefix each. */
export type Kind = 'cluster' | 'nodes' | 'services' | 'service-names' | 'tasks' | 'registry-auth' | 'secrets';

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

const ROOT = '/shoal/v1/';
// etcd refuses transactions with more operations than --max-txn-ops (128 by default).
const MAX_OPS_PER_TXN = 100;

const keyOf = (kind: Kind, id: string) => `${ROOT}${kind}/${id}`;

function decode<T extends Versioned>(kv: IKeyValue): T {
  const obj = JSON.parse(kv.value.toString()) as T;
  obj.version = Number(kv.mod_revision);
  return obj;
}

function encode(obj: Versioned): string {
  const { version: _version, ...rest } = obj;
  return JSON.stringify(rest);
}

/**
 * Cluster state in etcd. Every write is a compare-and-swap on the object's version (its etcd
 * mod revision), so a stale writer — a retry, or a second manager — fails instead of
 * overwriting newer state.
 */
export class Store {
  constructor(readonly etcd: Etcd3) {}

  async get<T extends Versioned>(kind: Kind, id: string): Promise<T | null> {
    const res = await this.etcd.get(keyOf(kind, id)).exec();
    return res.kvs.length ? decode<T>(res.kvs[0]) : null;
  }

  async mustGet<T extends Versioned>(kind: Kind, id: string, what: string): Promise<T> {
    const obj = await this.get<T>(kind, id);
    if (!obj) throw notFound(`${what} ${id} not found`);
    return obj;
  }

  async list<T extends Versioned>(kind: Kind): Promise<T[]> {
    const res = await this.etcd.getAll().prefix(`${ROOT}${kind}/`).exec();
    return res.kvs.map((kv) => decode<T>(kv));
  }

  /**
   * Applies ops atomically (in chunks of MAX_OPS_PER_TXN, each chunk atomic) and sets the new
   * version on every created or updated object. Throws ABORTED when any compare fails.
   */
  async commit(ops: Op[]): Promise<void> {
    for (let i = 0; i < ops.length; i += MAX_OPS_PER_TXN) await this.commitChunk(ops.slice(i, i + MAX_OPS_PER_TXN));
  }

  private async commitChunk(ops: Op[]): Promise<void> {
    if (!ops.length) return;
    const compares = ops.map((op): [string, 'Create' | 'Mod', number] => {
      if (op.type === 'create') return [keyOf(op.kind, op.obj.id), 'Create', 0];
      if (op.type === 'update') return [keyOf(op.kind, op.obj.id), 'Mod', op.obj.version];
      return [keyOf(op.kind, op.id), 'Mod', op.version];
    });
    let txn = this.etcd.if(compares[0][0], compares[0][1], '==', compares[0][2]);
    for (const [key, column, value] of compares.slice(1)) txn = txn.and(key, column, '==', value);
    const writes = ops.map((op) =>
      op.type === 'delete' ? this.etcd.delete().key(keyOf(op.kind, op.id)) : this.etcd.put(keyOf(op.kind, op.obj.id)).value(encode(op.obj)),
    );
    const res = await txn.then(...writes).commit();
    if (!res.succeeded) throw aborted(conflictMessage(ops));
    const revision = Number(res.header.revision);
    for (const op of ops) if (op.type !== 'delete') op.obj.version = revision;
  }

  /** Calls onChange for every put or delete under the shoal prefix; returns a stop function. */
  async watch(onChange: (kind: Kind, id: string) => void): Promise<() => Promise<void>> {
    const watcher = await this.etcd.watch().prefix(ROOT).create();
    const handle = (kv: IKeyValue) => {
      const [kind, id] = kv.key.toString().slice(ROOT.length).split('/');
      onChange(kind as Kind, id);
    };
    watcher.on('put', handle);
    watcher.on('delete', handle);
    return () => watcher.cancel();
  }
}

function conflictMessage(ops: Op[]): string {
  if (ops.length === 1) {
    const op = ops[0];
    const id = op.type === 'delete' ? op.id : op.obj.id;
    if (op.type === 'create') return `${op.kind.replace(/s$/, '')} ${id} already exists`;
    return `${op.kind.replace(/s$/, '')} ${id} was changed by someone else; read it again and retry`;
  }
  return `the update conflicted with a concurrent change to ${ops.length} objects; retry`;
}
