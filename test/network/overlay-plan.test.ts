import { describe, expect, it } from 'vitest';
import {
  macForIp,
  planOverlay,
  vethName,
  type ObservedFdb,
  type ObservedLink,
  type ObservedNeighbour,
  type OverlayHost,
} from '../../src/network/overlay';

const host: OverlayHost = { prefix: 'sh', vtep: '192.168.5.1' };
const peer = (ip: string, vtep = '192.168.5.2') => ({ ip, mac: macForIp(ip), vtep });

const bridge = (name: string, more: Partial<ObservedLink> = {}): ObservedLink => ({
  ifname: name,
  mtu: 1450,
  flags: ['UP'],
  linkinfo: { info_kind: 'bridge' },
  ...more,
});
const vxlan = (name: string, vni: number, more: Partial<ObservedLink> = {}, data = {}): ObservedLink => ({
  ifname: name,
  mtu: 1450,
  flags: ['UP'],
  master: `shb${vni}`,
  linkinfo: { info_kind: 'vxlan', info_data: { id: vni, port: 4789, learning: false, proxy: true, local: '192.168.5.1', ...data } },
  ...more,
});
const veth = (name: string, master?: string): ObservedLink => ({ ifname: name, mtu: 1450, flags: ['UP'], master, linkinfo: { info_kind: 'veth' } });
const neigh = (ip: string, dev: string, mac = macForIp(ip), state = ['PERMANENT']): ObservedNeighbour => ({ dst: ip, dev, lladdr: mac, state });
const fdb = (mac: string, dev: string, dst: string): ObservedFdb => ({ mac, ifname: dev, dst, flags: ['self'] });

/** A node that carries network 4096 with one peer, exactly as planned. */
const converged = () => ({
  links: [bridge('shb4096'), vxlan('shv4096', 4096), veth('she0a000002', 'shb4096')],
  neighbours: [neigh('10.0.0.3', 'shv4096')],
  fdb: [fdb(macForIp('10.0.0.3'), 'shv4096', '192.168.5.2'), { mac: 'aa:bb:cc:dd:ee:ff', ifname: 'shv4096', master: 'shb4096', flags: [] }],
});

describe('planOverlay', () => {
  it('builds a network from nothing: bridge, VXLAN device in it, one neighbour and FDB entry per peer', () => {
    const plan = planOverlay(host, [{ vni: 4096, peers: [peer('10.0.0.3'), peer('10.0.0.4', '192.168.5.3')] }], { links: [], neighbours: [], fdb: [] });
    expect(plan).toEqual({
      ip: [
        'link add shb4096 type bridge',
        'link set shb4096 mtu 1450 up',
        'link add shv4096 type vxlan id 4096 dstport 4789 local 192.168.5.1 nolearning proxy',
        'link set shv4096 mtu 1450 master shb4096 up',
        'neigh replace 10.0.0.3 lladdr 02:42:0a:00:00:03 dev shv4096 nud permanent',
        'neigh replace 10.0.0.4 lladdr 02:42:0a:00:00:04 dev shv4096 nud permanent',
      ],
      bridge: [
        'fdb replace 02:42:0a:00:00:03 dev shv4096 dst 192.168.5.2 self permanent',
        'fdb replace 02:42:0a:00:00:04 dev shv4096 dst 192.168.5.3 self permanent',
      ],
    });
  });

  it('lets the kernel pick the VXLAN source without a vtep', () => {
    const plan = planOverlay({ prefix: 'sh' }, [{ vni: 4096, peers: [] }], { links: [], neighbours: [], fdb: [] });
    expect(plan.ip).toContain('link add shv4096 type vxlan id 4096 dstport 4789 nolearning proxy');
  });

  it('does nothing when the node is as wanted', () => {
    expect(planOverlay(host, [{ vni: 4096, peers: [peer('10.0.0.3')] }], converged())).toEqual({ ip: [], bridge: [] });
  });

  it('removes peers that left and adds those that came, moving one that changed node', () => {
    const observed = converged();
    observed.neighbours.push(neigh('10.0.0.9', 'shv4096'));
    observed.fdb.push(fdb(macForIp('10.0.0.9'), 'shv4096', '192.168.5.2'));
    const plan = planOverlay(host, [{ vni: 4096, peers: [peer('10.0.0.3', '192.168.5.7'), peer('10.0.0.5')] }], observed);
    expect(plan).toEqual({
      ip: ['neigh del 10.0.0.9 dev shv4096', 'neigh replace 10.0.0.5 lladdr 02:42:0a:00:00:05 dev shv4096 nud permanent'],
      bridge: [
        'fdb del 02:42:0a:00:00:03 dev shv4096 dst 192.168.5.2 self',
        'fdb del 02:42:0a:00:00:09 dev shv4096 dst 192.168.5.2 self',
        'fdb replace 02:42:0a:00:00:03 dev shv4096 dst 192.168.5.7 self permanent',
        'fdb replace 02:42:0a:00:00:05 dev shv4096 dst 192.168.5.2 self permanent',
      ],
    });
  });

  it('makes a learned, stale or foreign-MAC neighbour permanent with the right MAC', () => {
    const observed = converged();
    observed.neighbours = [neigh('10.0.0.3', 'shv4096', macForIp('10.0.0.3'), ['STALE'])];
    expect(planOverlay(host, [{ vni: 4096, peers: [peer('10.0.0.3')] }], observed).ip).toEqual([
      'neigh replace 10.0.0.3 lladdr 02:42:0a:00:00:03 dev shv4096 nud permanent',
    ]);
    observed.neighbours = [neigh('10.0.0.3', 'shv4096', '02:42:0a:00:00:99')];
    expect(planOverlay(host, [{ vni: 4096, peers: [peer('10.0.0.3')] }], observed).ip).toHaveLength(1);
  });

  it('ignores IPv6 neighbours, FDB entries without a destination, and devices of other prefixes', () => {
    const observed = converged();
    observed.neighbours.push({ dst: 'fe80::1', dev: 'shv4096', lladdr: '33:33:00:00:00:01', state: ['STALE'] });
    observed.links.push(bridge('docker0'), vxlan('xv4096', 4096), veth('shx0a000002'), veth('vethabc'));
    observed.neighbours.push(neigh('10.9.9.9', 'xv4096'));
    expect(planOverlay(host, [{ vni: 4096, peers: [peer('10.0.0.3')] }], observed)).toEqual({ ip: [], bridge: [] });
  });

  it('recreates a VXLAN device whose settings drifted, with all its entries', () => {
    for (const data of [{ id: 4097 }, { port: 8472 }, { learning: true }, { proxy: false }, { local: '192.168.5.9' }]) {
      const observed = converged();
      observed.links[1] = vxlan('shv4096', 4096, {}, data);
      expect(planOverlay(host, [{ vni: 4096, peers: [peer('10.0.0.3')] }], observed)).toEqual({
        ip: [
          'link del shv4096',
          'link add shv4096 type vxlan id 4096 dstport 4789 local 192.168.5.1 nolearning proxy',
          'link set shv4096 mtu 1450 master shb4096 up',
          'neigh replace 10.0.0.3 lladdr 02:42:0a:00:00:03 dev shv4096 nud permanent',
        ],
        bridge: ['fdb replace 02:42:0a:00:00:03 dev shv4096 dst 192.168.5.2 self permanent'],
      });
    }
  });

  it('fixes MTU, state and master in place', () => {
    const observed = converged();
    observed.links[0] = bridge('shb4096', { mtu: 1500, flags: [] });
    observed.links[1] = vxlan('shv4096', 4096, { master: undefined });
    expect(planOverlay(host, [{ vni: 4096, peers: [peer('10.0.0.3')] }], observed)).toEqual({
      ip: ['link set shb4096 mtu 1450 up', 'link set shv4096 mtu 1450 master shb4096 up'],
      bridge: [],
    });
  });

  it('replaces a device of the bridge name that is no bridge, and puts the VXLAN device and containers back in it', () => {
    const observed = converged();
    observed.links[0] = veth('shb4096');
    expect(planOverlay(host, [{ vni: 4096, peers: [peer('10.0.0.3')] }], observed).ip).toEqual([
      'link del shb4096',
      'link add shb4096 type bridge',
      'link set shb4096 mtu 1450 up',
      'link set she0a000002 master shb4096',
      'link set shv4096 mtu 1450 master shb4096 up',
    ]);
  });

  it('removes networks no longer wanted with their containers, and orphaned veths', () => {
    const observed = converged();
    observed.links.push(bridge('shb4097'), vxlan('shv4097', 4097), veth('she0a000102', 'shb4097'), veth('she0a000103'));
    expect(planOverlay(host, [{ vni: 4096, peers: [peer('10.0.0.3')] }], observed)).toEqual({
      ip: ['link del shb4097', 'link del shv4097', 'link del she0a000102', 'link del she0a000103'],
      bridge: [],
    });
    expect(planOverlay(host, [], observed).ip).toEqual([
      'link del shb4096',
      'link del shv4096',
      'link del she0a000002',
      'link del shb4097',
      'link del shv4097',
      'link del she0a000102',
      'link del she0a000103',
    ]);
  });

  it('refuses a prefix that could not name devices', () => {
    for (const prefix of ['', 'shoal1', '1sh', 'S', 'sh-']) {
      expect(() => planOverlay({ prefix }, [], { links: [], neighbours: [], fdb: [] })).toThrow(`overlay prefix "${prefix}" must be`);
    }
  });
});

describe('names and MACs', () => {
  it('derives them from the address', () => {
    expect(macForIp('10.0.3.17/24')).toBe('02:42:0a:00:03:11');
    expect(vethName('shoal', '10.255.0.2/24')).toBe('shoale0aff0002');
    expect(vethName('shoal', '10.255.0.2').length).toBeLessThanOrEqual(15);
  });
});
