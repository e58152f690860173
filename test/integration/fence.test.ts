import { describe, expect, it } from 'vitest';
import type { Fence } from '../../src/manager/store/store';
import { useEtcdStore } from '../helpers/etcd';

// A leader's writes are fenced by its election key: once the key is gone (the lease expired, or
// another manager won), the deposed leader's writes fail instead of landing.
const real = useEtcdStore();

async function campaignKey(key: string): Promise<Fence> {
  await real.etcd.client.put(key).value('leader').exec();
  const res = await real.etcd.client.get(key).exec();
  return { key, createRevision: Number(res.kvs[0].create_revision) };
}

describe('fenced writes', () => {
  it('land while the election key is the one the leader was elected with', async () => {
    const fence = await campaignKey('/test/election/a');
    const obj = { id: 'fenced-1', version: 0 };
    await real.store.commit([{ type: 'create', kind: 'services', obj }], fence);
    expect(await real.store.get('services', 'fenced-1')).toMatchObject({ id: 'fenced-1' });
  });

  it('are refused, saying why, once the key is gone or was made again by another term', async () => {
    const fence = await campaignKey('/test/election/b');
    await real.etcd.client.delete().key(fence.key).exec();
    const write = real.store.commit([{ type: 'create', kind: 'services', obj: { id: 'fenced-2', version: 0 } }], fence);
    await expect(write).rejects.toThrow(/no longer the leader/);
    await campaignKey(fence.key);
    await expect(real.store.commit([{ type: 'create', kind: 'services', obj: { id: 'fenced-3', version: 0 } }], fence)).rejects.toThrow(/no longer the leader/);
    expect(await real.store.get('services', 'fenced-2')).toBeNull();
    expect(await real.store.get('services', 'fenced-3')).toBeNull();
  });

  it('still report an ordinary conflict as one while the leader holds its key', async () => {
    const fence = await campaignKey('/test/election/c');
    await expect(real.store.commit([{ type: 'create', kind: 'services', obj: { id: 'fenced-1', version: 0 } }], fence)).rejects.toThrow(/already exists/);
  });
});
