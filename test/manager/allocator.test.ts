import { describe, expect, it } from 'vitest';
import type { Network__Output } from '../../src/gen/shoal/v1/Network';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import type { ServiceVips__Output } from '../../src/gen/shoal/v1/ServiceVips';
import type { TaskNetworks__Output } from '../../src/gen/shoal/v1/TaskNetworks';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { planAddresses, type AddressPlan, type AddressState } from '../../src/manager/allocator/addresses';
import { service, task } from '../fixtures';

const network = (id: string, subnet: string, vni: number): Network__Output => ({
  id,
  version: 1,
  spec: { name: id, driver: 'overlay', subnet, labels: {}, ingress: false },
  subnet,
  gateway: subnet.replace(/0\/\d+$/, '1'),
  vni,
  created_at: '',
});

const onNetworks = (s: Service__Output, ...ids: string[]): Service__Output => ({
  ...s,
  spec: { ...s.spec!, task_template: { ...s.spec!.task_template!, networks: ids.map((target) => ({ target })) } },
});

const netA = network('netA', '10.1.0.0/29', 4096);
const netB = network('netB', '10.2.0.0/24', 4097);

function state(o: Partial<AddressState>): AddressState {
  return { networks: [netA, netB], services: [], tasks: [], taskNetworks: [], serviceVips: [], nodes: [], nodeIngress: [], ...o };
}

/** The state after the plan's writes, as the next pass reads it. */
function applied(s: AddressState, p: AddressPlan): AddressState {
  const merge = <T extends { id: string }>(records: T[], c: { create: T[]; update: T[]; remove: T[] }) => {
    const gone = new Set([...c.remove, ...c.update].map((r) => r.id));
    return [...records.filter((r) => !gone.has(r.id)), ...c.update, ...c.create].map((r) => ({ ...r, version: 2 }));
  };
  return { ...s, taskNetworks: merge(s.taskNetworks, p.taskNetworks), serviceVips: merge(s.serviceVips, p.serviceVips), nodeIngress: merge(s.nodeIngress, p.nodeIngress) };
}

const addressesOf = (s: AddressState) => [...s.taskNetworks.flatMap((r) => r.networks), ...s.serviceVips.flatMap((r) => r.virtual_ips)].map((a) => a.address);

describe('planAddresses', () => {
  const api = onNetworks({ ...service(3), id: 'api' }, 'netA', 'netB');
  const t = (slot: number, extra: Partial<Task__Output> = {}) => task(api, slot, 'RUNNING', extra);

  it('gives every live task an address on each of its networks, in order, and its service a VIP on each', () => {
    const tasks = [t(1), t(2), t(3)];
    const p = planAddresses(state({ services: [api], tasks }));
    expect(p.taskNetworks.create.map((r) => [r.id, r.networks.map((a) => a.network_id)])).toEqual(tasks.map((x) => [x.id, ['netA', 'netB']]));
    expect(p.serviceVips.create).toEqual([{ id: 'api', version: 0, virtual_ips: [expect.objectContaining({ network_id: 'netA' }), expect.objectContaining({ network_id: 'netB' })] }]);
    const after = applied(state({ services: [api], tasks }), p);
    const all = addressesOf(after);
    expect(new Set(all).size).toBe(all.length);
    expect(all.filter((a) => a.startsWith('10.1.0.'))).toHaveLength(4);
    // The network, gateway and broadcast addresses are never handed out.
    expect(all).not.toContain('10.1.0.1/29');
    expect(p.failures.size).toBe(0);
  });

  it('puts the tasks that publish ports and every node on the ingress network, and no one before it exists', () => {
    const ingress = { ...network('ing', '10.255.0.0/24', 4200), spec: { name: 'ingress', driver: 'overlay', subnet: '', labels: {}, ingress: true } };
    const endpoint = { mode: 'vip', ports: [{ protocol: 'tcp', target_port: 80, published_port: 8080, publish_mode: 'ingress' }] };
    const web = { ...service(2), id: 'web' };
    const tasks = [task(web, 1, 'RUNNING', { endpoint }), task(web, 2, 'RUNNING')];
    const nodes = [{ id: 'n1' }, { id: 'n2' }];
    const before = planAddresses(state({ services: [web], tasks, nodes }));
    expect(before.taskNetworks.create).toEqual([]);
    expect(before.nodeIngress.create).toEqual([]);

    const s = state({ networks: [netA, ingress], services: [web], tasks, nodes });
    const p = planAddresses(s);
    expect(p.taskNetworks.create.map((r) => [r.id, r.networks.map((a) => a.network_id)])).toEqual([[tasks[0].id, ['ing']]]);
    expect(p.nodeIngress.create.map((r) => [r.id, r.address?.network_id])).toEqual([['n1', 'ing'], ['n2', 'ing']]);
    // the mesh's network holds no VIP: nothing resolves names on it
    expect(p.serviceVips.create).toEqual([]);
    const after = applied(s, p);
    const held = [...after.taskNetworks.flatMap((r) => r.networks), ...after.nodeIngress.map((r) => r.address!)].map((a) => a.address);
    expect(new Set(held).size).toBe(3);
    expect(planAddresses(after).nodeIngress).toEqual({ create: [], update: [], remove: [] });
    // a node that leaves gives its address back
    expect(planAddresses({ ...after, nodes: [{ id: 'n1' }] }).nodeIngress.remove.map((r) => r.id)).toEqual(['n2']);
  });

  it('is idempotent: a second pass over its own writes changes nothing', () => {
    const s = state({ services: [api], tasks: [t(1), t(2)] });
    const again = planAddresses(applied(s, planAddresses(s)));
    for (const c of [again.taskNetworks, again.serviceVips]) expect(c).toEqual({ create: [], update: [], remove: [] });
  });

  it('never hands out an address a stored record holds', () => {
    const held: TaskNetworks__Output = { id: 'old', version: 3, networks: [{ network_id: 'netA', address: '10.1.0.2/29' }] };
    const old = { ...t(1), id: 'old' };
    const p = planAddresses(state({ services: [api], tasks: [old, t(2)], taskNetworks: [held] }));
    const taken = p.taskNetworks.create.flatMap((r) => r.networks).concat(p.serviceVips.create.flatMap((r) => r.virtual_ips));
    expect(taken.map((a) => a.address)).not.toContain('10.1.0.2/29');
    // The old task keeps its address and gains one on the network it lacked.
    expect(p.taskNetworks.update).toEqual([{ id: 'old', version: 3, networks: [{ network_id: 'netA', address: '10.1.0.2/29' }, { network_id: 'netB', address: expect.any(String) }] }]);
  });

  it('releases the addresses of ended and removed tasks, of removed services, and of a network the service left', () => {
    const ended = t(1, { status: { state: 'SHUTDOWN', timestamp: '', message: '', err: '', container: null, health: '' } });
    const live = t(2);
    const records: TaskNetworks__Output[] = [
      { id: ended.id, version: 5, networks: [{ network_id: 'netA', address: '10.1.0.2/29' }] },
      { id: 'gone', version: 6, networks: [{ network_id: 'netA', address: '10.1.0.3/29' }] },
      { id: live.id, version: 7, networks: [{ network_id: 'netA', address: '10.1.0.4/29' }, { network_id: 'netB', address: '10.2.0.9/24' }] },
    ];
    const vips: ServiceVips__Output[] = [
      { id: 'removed', version: 8, virtual_ips: [{ network_id: 'netA', address: '10.1.0.5/29' }] },
      { id: 'api', version: 9, virtual_ips: [{ network_id: 'netA', address: '10.1.0.6/29' }, { network_id: 'netB', address: '10.2.0.2/24' }] },
    ];
    const leftB = onNetworks(api, 'netA');
    const liveOnA = { ...live, spec: leftB.spec!.task_template };
    const p = planAddresses(state({ services: [leftB], tasks: [ended, liveOnA], taskNetworks: records, serviceVips: vips }));
    expect(p.taskNetworks.remove.map((r) => [r.id, r.version]).sort()).toEqual([[ended.id, 5], ['gone', 6]].sort());
    expect(p.taskNetworks.update).toEqual([{ id: live.id, version: 7, networks: [{ network_id: 'netA', address: '10.1.0.4/29' }] }]);
    expect(p.serviceVips.remove.map((r) => r.id)).toEqual(['removed']);
    expect(p.serviceVips.update).toEqual([{ id: 'api', version: 9, virtual_ips: [{ network_id: 'netA', address: '10.1.0.6/29' }] }]);
    expect(p.taskNetworks.create).toEqual([]);
  });

  it('hands out the addresses after the newest task\'s, so that one given back is taken again last, even by a pass made afresh from the store', () => {
    const onlyB = onNetworks({ ...service(3), id: 'b' }, 'netB');
    const at = (slot: number, createdAt: string, state: 'RUNNING' | 'SHUTDOWN' = 'RUNNING') =>
      task(onlyB, slot, state, { created_at: createdAt, status: { state, timestamp: '', message: '', err: '', container: null, health: '' } });
    // Slot 1's first task (the lowest address) has ended; slot 2's is the newest.
    const ended = at(1, '2026-01-01T00:00:00.000Z', 'SHUTDOWN');
    const older = at(3, '2026-01-01T00:00:01.000Z');
    const newest = at(2, '2026-01-01T00:00:02.000Z');
    const records: TaskNetworks__Output[] = [
      { id: ended.id, version: 1, networks: [{ network_id: 'netB', address: '10.2.0.3/24' }] },
      { id: older.id, version: 1, networks: [{ network_id: 'netB', address: '10.2.0.5/24' }] },
      { id: newest.id, version: 1, networks: [{ network_id: 'netB', address: '10.2.0.4/24' }] },
    ];
    const vips: ServiceVips__Output[] = [{ id: 'b', version: 1, virtual_ips: [{ network_id: 'netB', address: '10.2.0.2/24' }] }];
    const replacement = at(1, '2026-01-01T00:00:03.000Z');
    const p = planAddresses(state({ services: [onlyB], tasks: [ended, older, newest, replacement], taskNetworks: records, serviceVips: vips }));
    // Not 10.2.0.3, which the ended task gave back: after 10.2.0.4, the newest task's, 10.2.0.5 is held.
    expect(p.taskNetworks.create).toEqual([{ id: replacement.id, version: 0, networks: [{ network_id: 'netB', address: '10.2.0.6/24' }] }]);
  });

  it('gives a task that is being stopped no new address but lets it keep its own until it has ended', () => {
    const stopping = t(1, { desired_state: 'SHUTDOWN' });
    const keeps: TaskNetworks__Output = { id: stopping.id, version: 2, networks: [{ network_id: 'netA', address: '10.1.0.2/29' }] };
    const p = planAddresses(state({ services: [api], tasks: [stopping, t(2, { desired_state: 'SHUTDOWN' })], taskNetworks: [keeps] }));
    expect(p.taskNetworks).toEqual({ create: [], update: [], remove: [] });
  });

  it('says which service a full network leaves without addresses, and hands out the rest', () => {
    const onA = onNetworks({ ...service(6), id: 'big' }, 'netA');
    const tasks = [1, 2, 3, 4, 5, 6].map((slot) => task(onA, slot, 'PENDING'));
    const p = planAddresses(state({ services: [onA], tasks }));
    // A /29 has 5 usable addresses after the gateway: the VIP and four tasks.
    expect(p.serviceVips.create).toHaveLength(1);
    expect(p.taskNetworks.create).toHaveLength(4);
    expect(p.failures.get('big')).toMatch(/no address for it: network netA \(10\.1\.0\.0\/29\) has no free address left/);
  });

  it('replaces an address held twice (written around the API) with a free one', () => {
    const [a, b] = [t(1), t(2)];
    const twice: TaskNetworks__Output[] = [
      { id: a.id, version: 2, networks: [{ network_id: 'netA', address: '10.1.0.2/29' }, { network_id: 'netB', address: '10.2.0.5/24' }] },
      { id: b.id, version: 3, networks: [{ network_id: 'netA', address: '10.1.0.2/29' }, { network_id: 'netB', address: '10.2.0.6/24' }] },
    ];
    const p = planAddresses(state({ services: [api], tasks: [a, b], taskNetworks: twice }));
    expect(p.taskNetworks.update).toHaveLength(1);
    const fixed = p.taskNetworks.update[0];
    expect(fixed.id).toBe(b.id);
    expect(fixed.networks[0].address).not.toBe('10.1.0.2/29');
    expect(fixed.networks[1].address).toBe('10.2.0.6/24');
  });
});
