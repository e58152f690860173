import { describe, expect, it } from 'vitest';
import type { Network__Output } from '../../src/gen/shoal/v1/Network';
import { networkUsers, resolveNetwork, resolveServiceNetworks, validateNetworkSpec } from '../../src/manager/networks';

const net = (id: string, name: string): Network__Output => ({
  id,
  version: 1,
  spec: { name, driver: 'overlay', subnet: '', labels: {}, ingress: false },
  subnet: '10.0.0.0/24',
  gateway: '10.0.0.1',
  vni: 4096,
  created_at: '',
});

describe('validateNetworkSpec', () => {
  it('fills the driver and puts the subnet in canonical form', () => {
    expect(validateNetworkSpec({ name: 'backend', subnet: '10.20.0.0/24', labels: { team: 'a' } })).toEqual({
      name: 'backend',
      driver: 'overlay',
      subnet: '10.20.0.0/24',
      labels: { team: 'a' },
      ingress: false,
    });
    expect(validateNetworkSpec({ name: 'b' })).toEqual({ name: 'b', driver: 'overlay', subnet: '', labels: {}, ingress: false });
  });

  it.each([
    [{}, 'invalid network spec: name: must not be empty'],
    [{ name: '-x' }, "invalid network spec: name: must start with a letter or digit and contain only letters, digits, '_', '.' and '-'"],
    [{ name: 'a'.repeat(64) }, 'invalid network spec: name: must be at most 63 characters'],
    [{ name: 'n', driver: 'bridge' }, 'invalid network spec: driver: must be overlay, not "bridge"'],
    [{ name: 'n', subnet: '10.20.0.1/24' }, 'invalid network spec: subnet: "10.20.0.1/24" has host bits set; the network is 10.20.0.0/24'],
    [{ name: 'n', subnet: '10.20.0.0' }, 'invalid network spec: subnet: "10.20.0.0" is not an IPv4 CIDR such as 10.20.0.0/24'],
    [{ name: 'n', subnet: '10.20.0.0/31' }, 'invalid network spec: subnet: "10.20.0.0/31" is too small: a network needs a /30 or larger'],
    [{ name: 'ingress' }, 'invalid network spec: name: "ingress" is the routing mesh\'s network, which shoal makes itself'],
    [{ name: 'n', labels: { 'a b': '' } }, 'invalid network spec: labels: "a b" is not a valid label key'],
  ])('refuses %j', (spec, message) => {
    expect(() => validateNetworkSpec(spec)).toThrow(message);
  });

  it('refuses a missing spec', () => {
    expect(() => validateNetworkSpec(null)).toThrow('invalid network spec: spec: required');
  });
});

describe('resolveNetwork', () => {
  const networks = [net('abc123', 'backend'), net('abd456', 'frontend'), net('xyz', 'abc')];
  it('finds by id, then name, then unique prefix', () => {
    expect(resolveNetwork(networks, 'abd456').spec!.name).toBe('frontend');
    expect(resolveNetwork(networks, 'abc').id).toBe('xyz');
    expect(resolveNetwork(networks, 'abc1').spec!.name).toBe('backend');
    expect(() => resolveNetwork(networks, 'ab')).toThrow('network ID prefix "ab" is ambiguous: it matches 2 networks');
    expect(() => resolveNetwork(networks, 'nope')).toThrow('network nope not found');
    expect(() => resolveNetwork(networks, '')).toThrow('a network name or ID is required');
  });
});

describe('networkUsers', () => {
  it('counts services with a VIP on it and tasks attached to it until they end', () => {
    const users = networkUsers('n1', {
      services: [{ id: 's1', spec: { name: 'api' } as never }],
      vips: [
        { id: 's1', version: 1, virtual_ips: [{ network_id: 'n1', address: '10.0.0.2/24' }] },
        { id: 's2', version: 1, virtual_ips: [{ network_id: 'n2', address: '10.0.1.2/24' }] },
      ],
      tasks: [
        { id: 't1', status: { state: 'RUNNING' } as never },
        { id: 't2', status: { state: 'SHUTDOWN' } as never },
        { id: 't3', status: { state: 'PENDING' } as never },
      ],
      attachments: [
        { id: 't1', version: 1, networks: [{ network_id: 'n1', address: '10.0.0.3/24' }] },
        { id: 't2', version: 1, networks: [{ network_id: 'n1', address: '10.0.0.4/24' }] },
        { id: 't3', version: 1, networks: [{ network_id: 'n2', address: '10.0.1.3/24' }] },
        { id: 't9', version: 1, networks: [{ network_id: 'n1', address: '10.0.0.9/24' }] },
      ],
    });
    expect(users).toEqual(['service api', 'task t1']);
  });
});

describe('networks of a service', () => {
  const networks = [net('abc123', 'backend'), net('def456', 'frontend')];

  it('resolves names, ids and id prefixes to the stored networks, in order', () => {
    expect(resolveServiceNetworks([{ target: 'frontend' }, { target: 'abc' }], networks).map((n) => n.id)).toEqual(['def456', 'abc123']);
  });

  it('refuses an unknown network and one named twice, naming the field', () => {
    expect(() => resolveServiceNetworks([{ target: 'backend' }, { target: 'nope' }], networks)).toThrow(
      'invalid service spec: task_template.networks[1].target: network nope not found',
    );
    expect(() => resolveServiceNetworks([{ target: 'backend' }, { target: 'abc123' }], networks)).toThrow(
      'invalid service spec: task_template.networks[1].target: network backend is listed twice',
    );
  });

  it('counts a service that names the network as a user, before it has a VIP there', () => {
    const service = { id: 's3', spec: { name: 'web', task_template: { networks: [{ target: 'n1' }] } } as never };
    expect(networkUsers('n1', { services: [service], vips: [], tasks: [], attachments: [] })).toEqual(['service web']);
    expect(networkUsers('n2', { services: [service], vips: [], tasks: [], attachments: [] })).toEqual([]);
  });
});
