import { describe, expect, it } from 'vitest';
import { useE2eNode } from '../e2e/use-node';

const node = useE2eNode({ ready: false });

describe('shoal network (a real shoald)', () => {
  it('creates, lists, inspects and removes overlay networks, and refuses bad input in one sentence', () => {
    node.ok('init');
    const id = node.ok('network', 'create', '--subnet', '10.30.0.0/24', '-l', 'team=a', 'backend').trim();
    expect(id).toMatch(/^[a-z0-9]{25}$/);
    node.ok('network', 'create', 'frontend');

    expect(node.ok('network', 'ls').split('\n')[0].split(/\s{3,}/)).toEqual(['NETWORK ID', 'NAME', 'DRIVER', 'SUBNET', 'VNI']);
    expect(node.ok('network', 'ls', '--format', 'json')).toContain('"subnet": "10.0.0.0/24"');
    expect(node.ok('network', 'ls', '-q').trim().split('\n')).toContain(id);
    const [inspected] = JSON.parse(node.ok('network', 'inspect', 'backend'));
    expect(inspected).toMatchObject({ id, spec: { name: 'backend', driver: 'overlay', labels: { team: 'a' } }, subnet: '10.30.0.0/24', gateway: '10.30.0.1', vni: 4096 });

    expect(node.fails('network', 'create', '--subnet', '10.30.0.128/25', 'other')).toBe(
      'Error: subnet 10.30.0.128/25 overlaps 10.30.0.0/24 of network backend\n',
    );
    expect(node.fails('network', 'create', '--subnet', '10.30.1.0/33', 'other')).toBe(
      'Error: invalid network spec: subnet: "10.30.1.0/33" is not an IPv4 CIDR such as 10.20.0.0/24\n',
    );
    expect(node.fails('network', 'create', '--driver', 'bridge', 'other')).toBe('Error: invalid network spec: driver: must be overlay, not "bridge"\n');
    expect(node.fails('network', 'create', 'backend')).toBe('Error: a network named "backend" already exists\n');

    expect(node.ok('network', 'rm', 'backend', 'frontend')).toBe('backend\nfrontend\n');
    expect(node.ok('network', 'ls', '-q')).toBe('');
    expect(node.fails('network', 'rm', 'backend')).toBe('Error: network backend not found\n');
  });
});
