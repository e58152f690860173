import { describe, expect, it } from 'vitest';
import type { Network__Output } from '../../src/gen/shoal/v1/Network';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import type { TaskNetworks__Output } from '../../src/gen/shoal/v1/TaskNetworks';
import { planAddresses } from '../../src/manager/allocator/addresses';
import { indexNetworks, nodeNetworks } from '../../src/manager/dispatcher/node-networks';
import { dnsTable, resolve, reverseName } from '../../src/network/dns-records';
import { service, task } from '../fixtures';

const netA: Network__Output = {
  id: 'netA',
  version: 1,
  spec: { name: 'netA', driver: 'overlay', subnet: '10.1.0.0/24', labels: {}, ingress: false },
  subnet: '10.1.0.0/24',
  gateway: '10.1.0.1',
  vni: 4096,
  created_at: '',
};

/** The service "cache" on netA, in endpoint mode `mode`. */
function cacheService(mode: string): Service__Output {
  const s = service(2);
  return {
    ...s,
    id: 'cache',
    spec: { ...s.spec!, name: 'cache', endpoint_spec: { mode, ports: [] }, task_template: { ...s.spec!.task_template!, networks: [{ target: 'netA' }] } },
  };
}

describe('a dnsrr service', () => {
  const vip = cacheService('vip');
  const rr = cacheService('dnsrr');
  const [t1, t2] = [task(vip, 1, 'RUNNING', { node_id: 'n1' }), task(vip, 2, 'RUNNING', { node_id: 'n2' })];
  const records: TaskNetworks__Output[] = [
    { id: t1.id, version: 1, networks: [{ network_id: 'netA', address: '10.1.0.3/24' }] },
    { id: t2.id, version: 1, networks: [{ network_id: 'netA', address: '10.1.0.4/24' }] },
  ];
  const heldVip = { id: 'cache', version: 4, virtual_ips: [{ network_id: 'netA', address: '10.1.0.2/24' }] };

  it('gets no VIP, and gives back the one it held as a vip service; its tasks keep their addresses', () => {
    const fresh = planAddresses({ networks: [netA], services: [rr], tasks: [t1, t2], taskNetworks: [], serviceVips: [], nodes: [], nodeIngress: [] });
    expect(fresh.serviceVips).toEqual({ create: [], update: [], remove: [] });
    expect(fresh.taskNetworks.create).toHaveLength(2);

    const switched = planAddresses({ networks: [netA], services: [rr], tasks: [t1, t2], taskNetworks: records, serviceVips: [heldVip], nodes: [], nodeIngress: [] });
    expect(switched.serviceVips).toEqual({ create: [], update: [], remove: [{ id: 'cache', version: 4, virtual_ips: [] }] });
    expect(switched.taskNetworks).toEqual({ create: [], update: [], remove: [] });
  });

  it('is sent to its nodes with no VIP and its running tasks, even while its old VIP is not yet released', () => {
    const state = (s: Service__Output) => nodeNetworks('n1', [t1], indexNetworks([netA], records, [heldVip], [t1, t2], new Map([['n2', '192.168.0.2']]), [s]));
    expect(state(rr).services).toEqual([{ service_id: 'cache', network_id: 'netA', vip: '', endpoints: ['10.1.0.3', '10.1.0.4'], service_name: 'cache' }]);
    expect(state(vip).services).toEqual([{ service_id: 'cache', network_id: 'netA', vip: '10.1.0.2', endpoints: ['10.1.0.3', '10.1.0.4'], service_name: 'cache' }]);
  });

  it('resolves to its task addresses the moment it switches from vip, never to the old VIP (moby/moby#38575)', () => {
    const table = (s: Service__Output) => dnsTable(nodeNetworks('n1', [t1], indexNetworks([netA], records, [heldVip], [t1, t2], new Map(), [s])));
    const ask = (s: Service__Output, name: string, type: 'A' | 'PTR' = 'A') => resolve(table(s), t1.id, { name, type, class: 'IN' })?.map((a) => ('data' in a ? a.data : ''));
    expect(ask(vip, 'cache')).toEqual(['10.1.0.2']);
    expect(ask(rr, 'cache')).toEqual(['10.1.0.3', '10.1.0.4']);
    expect(ask(rr, 'tasks.cache')).toEqual(['10.1.0.3', '10.1.0.4']);
    expect(ask(rr, reverseName('10.1.0.2'), 'PTR')).toBeUndefined();
  });
});
