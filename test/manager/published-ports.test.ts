import type { handleUnaryCall, ServerUnaryCall, ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import type { PortConfig__Output } from '../../src/gen/shoal/v1/PortConfig';
import type { ServiceResponse__Output } from '../../src/gen/shoal/v1/ServiceResponse';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import type { ServiceSpec } from '../../src/gen/shoal/v1/ServiceSpec';
import { ControlApi } from '../../src/manager/control-api';
import type { NodeLogs } from '../../src/manager/dispatcher/node-logs';
import { DYNAMIC_PORTS, hostPortUsers, planPortClaims, type PortClaim } from '../../src/manager/published-ports';
import { rolledBack } from '../../src/manager/orchestrator/update';
import type { StoreCache } from '../../src/manager/store/cache';
import { service } from '../fixtures';
import { useEtcdStore } from '../helpers/etcd';

const ingress = (published_port: number, protocol = 'tcp'): PortConfig__Output => ({ protocol, target_port: 80, published_port, publish_mode: 'ingress' });
const host = (published_port: number): PortConfig__Output => ({ protocol: 'tcp', target_port: 80, published_port, publish_mode: 'host' });
const claim = (id: string, service_id: string, version = 7): PortClaim => ({ id, version, service_id });

describe('planPortClaims', () => {
  it('claims each ingress port the service publishes, and no host-mode port', () => {
    const plan = planPortClaims('web', [ingress(8080), ingress(8080, 'udp'), host(9090)], []);
    expect(plan.conflicts).toEqual([]);
    expect(plan.ops).toEqual([
      { type: 'create', kind: 'published-ports', obj: { id: 'tcp-8080', version: 0, service_id: 'web' } },
      { type: 'create', kind: 'published-ports', obj: { id: 'udp-8080', version: 0, service_id: 'web' } },
    ]);
  });

  it('finds the ports another service holds, by their index, and keeps the service’s own', () => {
    const claims = [claim('tcp-8080', 'api'), claim('tcp-8081', 'web')];
    const plan = planPortClaims('web', [ingress(8081), ingress(8080), ingress(8080, 'udp')], claims);
    expect(plan.conflicts).toEqual([{ index: 1, port: '8080/tcp', serviceId: 'api' }]);
    expect(plan.ops).toEqual([{ type: 'create', kind: 'published-ports', obj: { id: 'udp-8080', version: 0, service_id: 'web' } }]);
  });

  it('refuses a port another service publishes in the other mode: the mesh takes an ingress port on every node', () => {
    const hostUsers = hostPortUsers([{ id: 'edge', spec: { ...service(1).spec!, endpoint_spec: { mode: 'vip', ports: [host(9090)] } } }]);
    expect(planPortClaims('web', [ingress(9090)], [], hostUsers).conflicts).toEqual([{ index: 0, port: '9090/tcp', serviceId: 'edge' }]);
    expect(planPortClaims('edge', [ingress(9090)], [], hostUsers).conflicts).toEqual([]);
    expect(planPortClaims('edge', [host(8080)], [claim('tcp-8080', 'web')]).conflicts).toEqual([{ index: 0, port: '8080/tcp', serviceId: 'web' }]);
    // two services may publish the same host-mode port: the scheduler keeps them on different nodes
    expect(planPortClaims('other', [host(9090)], [], hostUsers).conflicts).toEqual([]);
    // and a port of 0 never lands on a host-mode port in use
    const dynamic = hostPortUsers([{ id: 'edge', spec: { ...service(1).spec!, endpoint_spec: { mode: 'vip', ports: [host(DYNAMIC_PORTS.first)] } } }]);
    expect(planPortClaims('web', [ingress(0)], [], dynamic).ports[0].published_port).toBe(DYNAMIC_PORTS.first + 1);
  });

  it('releases the ports the service no longer publishes, at the version read', () => {
    const claims = [claim('tcp-8080', 'web', 3), claim('tcp-8081', 'web', 4), claim('tcp-9000', 'api')];
    expect(planPortClaims('web', [ingress(8081)], claims).ops).toEqual([{ type: 'delete', kind: 'published-ports', id: 'tcp-8080', version: 3 }]);
    expect(planPortClaims('web', [], claims).ops.map((op) => op.type === 'delete' && op.id)).toEqual(['tcp-8080', 'tcp-8081']);
  });

  it('gives an ingress port of 0 the lowest port of 30000–32767 that no other service holds nor the spec names', () => {
    const claims = [claim('tcp-30000', 'api'), claim('udp-30001', 'api')];
    const plan = planPortClaims('web', [ingress(0), ingress(30001), ingress(0), ingress(0, 'udp')], claims);
    expect(plan.ports.map((p) => `${p.published_port}/${p.protocol}`)).toEqual(['30002/tcp', '30001/tcp', '30003/tcp', '30000/udp']);
    expect(plan.ops.map((op) => op.type === 'create' && op.obj.id).sort()).toEqual(['tcp-30001', 'tcp-30002', 'tcp-30003', 'udp-30000']);
  });

  it('hands a port of 0 one the service held and gave up, with nothing written for it', () => {
    const plan = planPortClaims('web', [ingress(0)], [claim('tcp-30000', 'web')]);
    expect(plan.ports[0].published_port).toBe(30000);
    expect(plan.ops).toEqual([]);
  });

  it('refuses a port of 0 when the range is used up, naming the field', () => {
    const all: PortClaim[] = [];
    for (let p = DYNAMIC_PORTS.first; p <= DYNAMIC_PORTS.last; p++) all.push(claim(`tcp-${p}`, 'api'));
    expect(() => planPortClaims('web', [ingress(8080), ingress(0)], all)).toThrow(
      /endpoint_spec\.ports\[1\]\.published_port: no tcp port is free in 30000–32767/,
    );
    expect(planPortClaims('web', [ingress(0, 'udp')], all).ports[0].published_port).toBe(30000);
  });
});

describe('a rollback', () => {
  const s = service(1);
  const template = (image: string) => ({ ...s.spec!.task_template!, container: { ...s.spec!.task_template!.container!, image } });
  const rollingBack = (before: PortConfig__Output[], now: PortConfig__Output[]) =>
    rolledBack(
      {
        ...s,
        spec: { ...s.spec!, task_template: template('new:2'), endpoint_spec: { mode: 'vip', ports: now } },
        previous_spec: { ...s.spec!, task_template: template('old:1'), endpoint_spec: { mode: 'vip', ports: before } },
        spec_version: 3,
        previous_spec_version: 2,
      },
      '2026-01-01T00:00:00.000Z',
      'manual',
    );

  it('restores the previous task template but keeps the endpoint spec, whose ports only the control API claims', () => {
    const back = rollingBack([], [ingress(8080)]);
    expect(back.spec!.task_template!.container!.image).toBe('old:1');
    expect(back.spec!.endpoint_spec!.ports).toEqual([ingress(8080)]);
  });

  it('makes the previous version’s tasks current again only when they were made with the same ports', () => {
    expect(rollingBack([ingress(8080)], [ingress(8080)]).spec_version).toBe(2);
    // Tasks are made with their ports: those of version 2 publish none, so new ones are made.
    expect(rollingBack([], [ingress(8080)]).spec_version).toBe(4);
  });
});

/** Calls a unary handler as grpc-js would, resolving with its answer or rejecting with its status. */
function call<Res>(handler: handleUnaryCall<never, unknown>, request: object): Promise<Res> {
  return new Promise((resolve, reject) =>
    handler({ request } as ServerUnaryCall<never, unknown>, (err: Partial<ServiceError> | null, value?: unknown) => (err ? reject(err) : resolve(value as Res))),
  );
}

const spec = (name: string, ports: PortConfig__Output[]): ServiceSpec => ({
  name,
  mode: { replicated: { replicas: 0 } },
  task_template: { container: { image: 'shoal-test:latest' } },
  endpoint_spec: { ports },
});

describe('the control API with published ports (real etcd)', () => {
  const ctx = useEtcdStore();
  const api = () => new ControlApi(ctx.store, {} as StoreCache, {} as NodeLogs).handlers();
  const create = (name: string, ...ports: PortConfig__Output[]) => call<ServiceResponse__Output>(api().CreateService, { spec: spec(name, ports) });
  const claims = async () => (await ctx.store.list<PortClaim>('published-ports')).map((c) => [c.id, c.service_id]);
  const names = async () => (await ctx.store.list<Service__Output>('services')).map((s) => s.spec!.name).sort();
  const removeAll = async () => {
    for (const s of await ctx.store.list<Service__Output>('services')) await call(api().RemoveService, { service: s.id });
  };

  it('gives a port to one of two services that ask for it at once, and refuses the other by name, storing nothing of it', async () => {
    const results = await Promise.allSettled([create('one', ingress(8080)), create('two', ingress(8080))]);
    const won = results.findIndex((r) => r.status === 'fulfilled');
    const lost = results[1 - won] as PromiseRejectedResult;
    const winner = ['one', 'two'][won];
    expect(lost.reason.details).toBe(`invalid service spec: endpoint_spec.ports[0].published_port: published port 8080/tcp is already in use by service "${winner}"`);
    expect(await names()).toEqual([winner]);
    const id = (results[won] as PromiseFulfilledResult<ServiceResponse__Output>).value.service!.id;
    expect(await claims()).toEqual([['tcp-8080', id]]);
    await removeAll();
    expect(await claims()).toEqual([]);
  });

  it('stores the port it picked for a port of 0, keeps it on update, releases what an update drops and what rm removes', async () => {
    const { service: web } = await create('web', ingress(0), ingress(8080, 'udp'));
    expect(web!.spec!.endpoint_spec!.ports.map((p) => p.published_port)).toEqual([30000, 8080]);
    const stored = await call<Service__Output>(api().GetService, { service: 'web' });
    const kept = { ...stored.spec!, endpoint_spec: { mode: 'vip', ports: [stored.spec!.endpoint_spec!.ports[0]] } };
    await call(api().UpdateService, { service: 'web', version: stored.version, spec: kept });
    expect(await claims()).toEqual([['tcp-30000', web!.id]]);
    // 8080/udp, given up, is free again; 30000/tcp is not.
    const { service: dns } = await create('dns', ingress(8080, 'udp'), ingress(0));
    expect(dns!.spec!.endpoint_spec!.ports.map((p) => p.published_port)).toEqual([8080, 30001]);
    await expect(create('other', ingress(30000))).rejects.toMatchObject({ details: expect.stringMatching(/published port 30000\/tcp is already in use by service "web"/) });
    await call(api().RemoveService, { service: 'web' });
    expect((await create('other', ingress(30000))).service!.spec!.endpoint_spec!.ports[0].published_port).toBe(30000);
    await removeAll();
    expect(await claims()).toEqual([]);
  });

  it('refuses an update taking a port another service holds, and changes nothing', async () => {
    await create('api', ingress(8080));
    await create('web', ingress(8081));
    const before = await call<Service__Output>(api().GetService, { service: 'web' });
    const taking = { ...before.spec!, endpoint_spec: { mode: 'vip', ports: [ingress(8081), ingress(8080)] } };
    await expect(call(api().UpdateService, { service: 'web', version: before.version, spec: taking })).rejects.toMatchObject({
      details: 'invalid service spec: endpoint_spec.ports[1].published_port: published port 8080/tcp is already in use by service "api"',
    });
    expect(await call(api().GetService, { service: 'web' })).toEqual(before);
    expect((await claims()).map(([id]) => id)).toEqual(['tcp-8080', 'tcp-8081']);
    await removeAll();
  });
});
