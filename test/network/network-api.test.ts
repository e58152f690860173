import { status, type handleUnaryCall } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromServiceError } from '../../src/common/errors';
import type { Network__Output } from '../../src/gen/shoal/v1/Network';
import { NetworkApi, type NetworkHandlers } from '../../src/manager/network-api';
import { Store } from '../../src/manager/store/store';
import { startEtcd, type TestEtcd } from '../helpers/etcd';

/** Calls a unary handler as grpc-js would, turning its error status back into a ShoalError. */
function call<Req, Res>(handler: handleUnaryCall<Req, Res>, request: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    handler({ request } as Parameters<typeof handler>[0], (err, res) => (err ? reject(fromServiceError(err)) : resolve(res as Res)));
  });
}

describe('network API (real etcd)', () => {
  let etcd: TestEtcd;
  let store: Store;
  let api: NetworkHandlers;
  const create = (name: string, subnet = '') => call(api.CreateNetwork, { spec: { name, subnet, driver: '', labels: {}, ingress: false } }) as Promise<Network__Output>;
  const list = async () => ((await call(api.ListNetworks, {})) as { networks: Network__Output[] }).networks;

  beforeAll(async () => {
    etcd = await startEtcd();
    store = new Store(etcd.client);
    api = new NetworkApi(store).handlers();
  });

  afterAll(async () => {
    await etcd?.stop();
  });

  it('stores a network with a subnet from the pool, or the one asked for, and a VNI each', async () => {
    const a = await create('alpha');
    const b = await create('beta', '10.20.0.0/24');
    expect(a).toMatchObject({ spec: { name: 'alpha', driver: 'overlay', subnet: '' }, subnet: '10.0.0.0/24', gateway: '10.0.0.1', vni: 4096 });
    expect(b).toMatchObject({ spec: { subnet: '10.20.0.0/24' }, subnet: '10.20.0.0/24', gateway: '10.20.0.1', vni: 4097 });
    expect((await list()).map((n) => [n.spec!.name, n.subnet, n.vni])).toEqual([
      ['alpha', '10.0.0.0/24', 4096],
      ['beta', '10.20.0.0/24', 4097],
    ]);
    expect(await call(api.GetNetwork, { network: 'beta' })).toEqual(b);
    expect(await call(api.GetNetwork, { network: a.id.slice(0, 6) })).toEqual(a);
  });

  it('refuses a name in use, an overlapping or malformed subnet, and stores nothing', async () => {
    const before = await list();
    await expect(create('alpha')).rejects.toMatchObject({ code: status.ALREADY_EXISTS, message: 'a network named "alpha" already exists' });
    await expect(create('gamma', '10.20.0.0/16')).rejects.toMatchObject({
      code: status.FAILED_PRECONDITION,
      message: 'subnet 10.20.0.0/16 overlaps 10.20.0.0/24 of network beta',
    });
    await expect(create('gamma', '10.20.300.0/24')).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, message: expect.stringContaining('subnet: "10.20.300.0/24" is not an IPv4 CIDR') });
    await expect(create('', '')).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, message: 'invalid network spec: name: must not be empty' });
    expect(await list()).toEqual(before);
  });

  it('never hands the same subnet or VNI to networks created at the same time', async () => {
    const made = await Promise.all(['c1', 'c2', 'c3', 'c4'].map((name) => create(name)));
    const all = await list();
    expect(new Set(all.map((n) => n.subnet)).size).toBe(all.length);
    expect(new Set(all.map((n) => n.vni)).size).toBe(all.length);
    expect(made.map((n) => n.subnet).sort()).toEqual(['10.0.1.0/24', '10.0.2.0/24', '10.0.3.0/24', '10.0.4.0/24']);
  });

  it('refuses to remove a network a service or a live task still uses, then removes it and frees its subnet', async () => {
    const beta = (await list()).find((n) => n.spec!.name === 'beta')!;
    await store.commit([
      { type: 'create', kind: 'services', obj: { id: 'svc1', version: 0, spec: { name: 'api' } } as never },
      { type: 'create', kind: 'service-vips', obj: { id: 'svc1', version: 0, virtual_ips: [{ network_id: beta.id, address: '10.20.0.2/24' }] } as never },
    ]);
    await expect(call(api.RemoveNetwork, { network: 'beta' })).rejects.toMatchObject({
      code: status.FAILED_PRECONDITION,
      message: 'network beta is in use by service api; remove them first',
    });
    const vips = (await store.get('service-vips', 'svc1'))!;
    await store.commit([{ type: 'delete', kind: 'service-vips', id: 'svc1', version: vips.version }]);
    expect(await call(api.RemoveNetwork, { network: 'beta' })).toEqual({ id: beta.id });
    await expect(call(api.GetNetwork, { network: 'beta' })).rejects.toMatchObject({ code: status.NOT_FOUND });
    expect((await create('beta2', '10.20.0.0/16')).subnet).toBe('10.20.0.0/16');
    await expect(call(api.RemoveNetwork, { network: 'beta' })).rejects.toMatchObject({ code: status.NOT_FOUND, message: 'network beta not found' });
  });
});
