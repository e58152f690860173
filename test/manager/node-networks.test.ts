import { describe, expect, it } from 'vitest';
import type { Network__Output } from '../../src/gen/shoal/v1/Network';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import type { TaskNetworks__Output } from '../../src/gen/shoal/v1/TaskNetworks';
import type { TaskState__Output } from '../../src/gen/shoal/v1/TaskState';
import { addressed, indexNetworks, nodeNetworks } from '../../src/manager/dispatcher/node-networks';
import { service, task } from '../fixtures';

const net = (id: string, vni: number): Network__Output => ({ id, version: 1, spec: null, subnet: '', gateway: '', vni, created_at: '' });
const on = (s: Service__Output, id: string, ...networks: string[]): Service__Output => ({
  ...s,
  id,
  spec: { ...s.spec!, task_template: { ...s.spec!.task_template!, networks: networks.map((target) => ({ target })) } },
});

describe('what a node is told of the overlay', () => {
  const named = (s: Service__Output, name: string) => ({ ...s, spec: { ...s.spec!, name } });
  const api = named(on(service(3), 'api', 'netA'), 'api');
  const db = named(on(service(1), 'db', 'netB'), 'db');
  const t = (s: Service__Output, node: string, state: TaskState__Output, desired: TaskState__Output = 'RUNNING') => task(s, 1, state, { node_id: node, desired_state: desired });
  const [a1, a2, a3, starting, stopping] = [t(api, 'n1', 'RUNNING'), t(api, 'n2', 'RUNNING'), t(api, 'n3', 'RUNNING'), t(api, 'n3', 'STARTING'), t(api, 'n2', 'RUNNING', 'SHUTDOWN')];
  const d1 = t(db, 'n2', 'RUNNING');
  const ended = t(api, 'n3', 'FAILED');
  const addr: Record<string, string> = { [a1.id]: '10.1.0.3', [a2.id]: '10.1.0.4', [a3.id]: '10.1.0.5', [starting.id]: '10.1.0.6', [stopping.id]: '10.1.0.7', [d1.id]: '10.2.0.3', [ended.id]: '10.1.0.8' };
  const records: TaskNetworks__Output[] = Object.entries(addr).map(([id, ip]) => ({ id, version: 1, networks: [{ network_id: ip.startsWith('10.1') ? 'netA' : 'netB', address: `${ip}/24` }] }));
  const vips = [
    { id: 'api', version: 1, virtual_ips: [{ network_id: 'netA', address: '10.1.0.2/24' }] },
    { id: 'db', version: 1, virtual_ips: [{ network_id: 'netB', address: '10.2.0.2/24' }] },
  ];
  const index = indexNetworks([net('netA', 4096), net('netB', 4097)], records, vips, [a1, a2, a3, starting, stopping, d1, ended], new Map([['n1', '192.168.0.1'], ['n2', '192.168.0.2'], ['n3', '192.168.0.3']]), [api, db]);

  it('gives a node its tasks’ networks and addresses, the other nodes’ tasks on them, and each VIP with its running tasks', () => {
    const state = nodeNetworks('n1', [a1], index);
    expect(state.networks.map((n) => n.id)).toEqual(['netA']);
    expect(state.attachments).toEqual([records[0]]);
    expect(state.peers).toEqual([
      { network_id: 'netA', ip: '10.1.0.4', node_addr: '192.168.0.2' },
      { network_id: 'netA', ip: '10.1.0.5', node_addr: '192.168.0.3' },
      { network_id: 'netA', ip: '10.1.0.6', node_addr: '192.168.0.3' },
      { network_id: 'netA', ip: '10.1.0.7', node_addr: '192.168.0.2' },
    ]);
    // Not the one starting, the one being stopped, nor the one that ended.
    expect(state.services).toEqual([{ service_id: 'api', network_id: 'netA', vip: '10.1.0.2', endpoints: ['10.1.0.3', '10.1.0.4', '10.1.0.5'], service_name: 'api' }]);
  });

  it('names every task on the node’s networks that has not ended, its own and the others’, as Swarm names their containers', () => {
    const state = nodeNetworks('n1', [a1], index);
    const name = (t: typeof a1) => `api.1.${t.id}`;
    expect(state.task_names).toEqual(
      [a1, a2, a3, starting, stopping].map((t) => ({ network_id: 'netA', name: name(t), ip: addr[t.id] })).sort((x, y) => (x.name < y.name ? -1 : 1)),
    );
    const global = task(api, 0, 'RUNNING', { node_id: 'n9' });
    const withGlobal = indexNetworks([net('netA', 4096)], [{ id: global.id, version: 1, networks: [{ network_id: 'netA', address: '10.1.0.9/24' }] }], [], [global], new Map(), [api]);
    expect(nodeNetworks('n9', [global], withGlobal).task_names).toEqual([{ network_id: 'netA', name: `api.n9.${global.id}`, ip: '10.1.0.9' }]);
  });

  it('keeps balancing the VIP of a service already removed, with no name to resolve it by', () => {
    const gone = indexNetworks([net('netA', 4096)], records, vips, [a1], new Map(), []);
    expect(nodeNetworks('n1', [a1], gone).services).toEqual([{ service_id: 'api', network_id: 'netA', vip: '10.1.0.2', endpoints: ['10.1.0.3'], service_name: '' }]);
  });

  it('tells a node nothing of networks it has no task on', () => {
    const n2 = nodeNetworks('n2', [d1], index);
    expect(n2.networks.map((n) => n.id)).toEqual(['netB']);
    expect(n2.peers).toEqual([]);
    expect(n2.services).toEqual([{ service_id: 'db', network_id: 'netB', vip: '10.2.0.2', endpoints: ['10.2.0.3'], service_name: 'db' }]);
    expect(n2.task_names).toEqual([{ network_id: 'netB', name: `db.1.${d1.id}`, ip: '10.2.0.3' }]);
    expect(nodeNetworks('n4', [], index)).toEqual({ networks: [], attachments: [], peers: [], services: [], task_names: [], ingress: null, published: [] });
  });

  it('holds back a task on networks until it has an address on each; others go at once', () => {
    const fresh = t(api, 'n1', 'ASSIGNED');
    expect(addressed(fresh, index)).toBe(false);
    expect(addressed(a1, index)).toBe(true);
    expect(addressed(task(service(1), 1, 'ASSIGNED'), index)).toBe(true);
    expect(addressed({ ...fresh, status: { ...fresh.status!, state: 'SHUTDOWN' } }, index)).toBe(true);
  });
});

describe('what a node is told of the routing mesh', () => {
  const ingress: Network__Output = { id: 'ing', version: 1, spec: { name: 'ingress', driver: 'overlay', subnet: '', labels: {}, ingress: true }, subnet: '10.255.0.0/24', gateway: '10.255.0.1', vni: 4200, created_at: '' };
  const port = (published: number, mode: string) => ({ protocol: 'tcp', target_port: 80, published_port: published, publish_mode: mode });
  const web = { ...on(service(2), 'web', 'netA'), spec: { ...on(service(2), 'web', 'netA').spec!, name: 'web', endpoint_spec: { mode: 'vip', ports: [port(8080, 'ingress')] } } };
  const edge = { ...service(1), id: 'edge', spec: { ...service(1).spec!, name: 'edge', endpoint_spec: { mode: 'vip', ports: [port(9090, 'host')] } } };
  const w1 = task(web, 1, 'RUNNING', { node_id: 'n1', endpoint: web.spec.endpoint_spec });
  const w2 = task(web, 2, 'RUNNING', { node_id: 'n2', endpoint: web.spec.endpoint_spec });
  const e1 = task(edge, 1, 'RUNNING', { node_id: 'n2', endpoint: edge.spec.endpoint_spec });
  const records: TaskNetworks__Output[] = [
    { id: w1.id, version: 1, networks: [{ network_id: 'netA', address: '10.1.0.3/24' }, { network_id: 'ing', address: '10.255.0.5/24' }] },
    { id: w2.id, version: 1, networks: [{ network_id: 'netA', address: '10.1.0.4/24' }, { network_id: 'ing', address: '10.255.0.6/24' }] },
    { id: e1.id, version: 1, networks: [{ network_id: 'ing', address: '10.255.0.7/24' }] },
  ];
  const nodeIngress = ['n1', 'n2', 'n3'].map((id, i) => ({ id, version: 1, address: { network_id: 'ing', address: `10.255.0.${20 + i}/24` } }));
  const addrs = new Map([['n1', '192.168.0.1'], ['n2', '192.168.0.2'], ['n3', '192.168.0.3']]);
  const index = indexNetworks([net('netA', 4096), ingress], records, [], [w1, w2, e1], addrs, [web, edge], nodeIngress);

  it('has a node with no task carry the ingress network, with its own address, and answer each ingress port over every running task', () => {
    const n3 = nodeNetworks('n3', [], index);
    expect(n3.networks.map((n) => n.id)).toEqual(['ing']);
    expect(n3.ingress).toEqual({ network_id: 'ing', address: '10.255.0.22/24' });
    expect(n3.peers.map((p) => `${p.ip}@${p.node_addr}`)).toEqual(['10.255.0.20@192.168.0.1', '10.255.0.21@192.168.0.2', '10.255.0.5@192.168.0.1', '10.255.0.6@192.168.0.2', '10.255.0.7@192.168.0.2']);
    expect(n3.published).toEqual([{ service_id: 'web', protocol: 'tcp', published_port: 8080, target_port: 80, publish_mode: 'ingress', endpoints: ['10.255.0.5', '10.255.0.6'] }]);
    // nothing resolves names on the mesh's network
    expect(n3.task_names).toEqual([]);
  });

  it('reaches a task on the node by its first interface, and publishes host-mode ports only where their tasks run', () => {
    const n2 = nodeNetworks('n2', [w2, e1], index);
    expect(n2.published).toEqual([
      { service_id: 'web', protocol: 'tcp', published_port: 8080, target_port: 80, publish_mode: 'ingress', endpoints: ['10.1.0.4', '10.255.0.5'] },
      { service_id: 'edge', protocol: 'tcp', published_port: 9090, target_port: 80, publish_mode: 'host', endpoints: ['10.255.0.7'] },
    ]);
    expect(nodeNetworks('n1', [w1], index).published.map((p) => p.published_port)).toEqual([8080]);
  });

  it('holds back a task that publishes until it has its ingress address', () => {
    const fresh = task(web, 3, 'ASSIGNED', { node_id: 'n3', endpoint: web.spec.endpoint_spec });
    expect(addressed(fresh, index)).toBe(false);
    expect(addressed(w1, index)).toBe(true);
  });
});
