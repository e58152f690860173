import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ShoalError } from '../../src/common/errors';
import { chunkBySize, commitWaves, LIST_PAGE_KEYS, MAX_OPS_PER_TXN, MAX_TXN_BYTES, Store, type Op, type Versioned } from '../../src/manager/store/store';
import { useEtcdStore } from '../helpers/etcd';

interface Blob extends Versioned {
  data: string;
}

const KiB = 1024;
const blob = (id: string, bytes: number): Blob => ({ id, version: 0, data: 'x'.repeat(bytes) });
const create = (obj: Blob): Op => ({ type: 'create', kind: 'tasks', obj });

describe('commitWaves', () => {
  const chunk = (...types: Op['type'][]) => types.map((type) => ({ op: { type } }));
  const shape = (waves: { op: { type: string } }[][][]) => waves.map((w) => w.map((c) => c.map((x) => x.op.type[0]).join('')));

  it('commits runs of single-type chunks together, and a mixed chunk alone, in order', () => {
    const chunks = [chunk('update', 'create'), chunk('create'), chunk('create'), chunk('update'), chunk('update', 'delete'), chunk('delete'), chunk('delete')];
    expect(shape(commitWaves(chunks))).toEqual([['uc'], ['c', 'c'], ['u'], ['ud'], ['d', 'd']]);
    expect(commitWaves([])).toEqual([]);
  });
});

describe('chunkBySize', () => {
  const items = (...bytes: number[]) => bytes.map((b, i) => ({ i, bytes: b }));
  const shape = (chunks: { i: number }[][]) => chunks.map((c) => c.map((x) => x.i));

  it('splits by op count and by bytes, keeping order', () => {
    expect(shape(chunkBySize(items(1, 1, 1, 1, 1), 2, 100))).toEqual([[0, 1], [2, 3], [4]]);
    expect(shape(chunkBySize(items(40, 40, 40, 10, 90), 10, 100))).toEqual([[0, 1], [2, 3], [4]]);
    expect(chunkBySize([], 10, 100)).toEqual([]);
  });

  it('puts an item larger than the budget in a chunk of its own', () => {
    expect(shape(chunkBySize(items(10, 500, 10), 10, 100))).toEqual([[0], [1], [2]]);
  });

  it('defaults to limits under etcd’s (128 ops, 1.5 MiB)', () => {
    expect(MAX_OPS_PER_TXN).toBeLessThan(128);
    expect(MAX_TXN_BYTES).toBeLessThan(1.5 * 1024 * KiB);
  });
});

describe('Store.commit against etcd’s request size limit (real etcd)', () => {
  const real = useEtcdStore();

  it('writes a batch larger than one etcd request in several transactions', async () => {
    // 30 × 100 KiB: 3 MiB in all, twice what etcd takes in one request.
    const objs = Array.from({ length: 30 }, (_, i) => blob(`batch-${i}`, 100 * KiB));
    await real.store.commit(objs.map(create));
    expect(objs.every((o) => o.version > 0)).toBe(true);
    expect((await real.store.list<Blob>('tasks')).filter((t) => t.id.startsWith('batch-'))).toHaveLength(30);
  });

  it('writes the rest when one object is too large, and names that one', async () => {
    const ops = [create(blob('small-1', 10)), create(blob('huge', 1600 * KiB)), create(blob('small-2', 10))];
    const err = await real.store.commit(ops).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShoalError);
    expect((err as ShoalError).code).toBe(status.RESOURCE_EXHAUSTED);
    expect((err as ShoalError).message).toMatch(/^task huge is too large for the cluster store: 1\.56 MiB encoded, and etcd takes at most 1\.50 MiB per request$/);
    expect(await real.store.get('tasks', 'small-1')).not.toBeNull();
    expect(await real.store.get('tasks', 'small-2')).not.toBeNull();
    expect(await real.store.get('tasks', 'huge')).toBeNull();
  });

  it('reports a refused write rather than a conflict of the same batch', async () => {
    const stale: Op = { type: 'update', kind: 'tasks', obj: { ...blob('small-1', 10), version: 1 } };
    const err = (await real.store.commit([stale, create(blob('huge-2', 1600 * KiB))]).catch((e: unknown) => e)) as ShoalError;
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
  });

  it('lists more keys than fit in one page, in order, as of one revision', async () => {
    const objs = Array.from({ length: 2 * LIST_PAGE_KEYS + 3 }, (_, i) => blob(`page-${String(i).padStart(5, '0')}`, 10));
    await real.store.commit(objs.map(create));
    const { kvs, revision } = await real.store.range('/shoal/v1/tasks/page-');
    expect(kvs.map((kv) => kv.key.toString().slice('/shoal/v1/tasks/'.length))).toEqual(objs.map((o) => o.id));
    expect(revision).toBeGreaterThanOrEqual(Math.max(...objs.map((o) => o.version)));
  });

  it('says the store is unavailable when etcd cannot be reached', async () => {
    const { Etcd3 } = await import('etcd3');
    const nowhere = new Etcd3({ hosts: 'http://127.0.0.1:1', dialTimeout: 500 });
    try {
      const err = (await new Store(nowhere).get('tasks', 'x').catch((e: unknown) => e)) as ShoalError;
      expect(err).toBeInstanceOf(ShoalError);
      expect(err.code).toBe(status.UNAVAILABLE);
      expect(err.message).toMatch(/^the cluster store \(etcd\) is unavailable: /);
    } finally {
      nowhere.close();
    }
  });
});
