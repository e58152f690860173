import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyOverlay, detachContainer, macForIp, readOverlay, vethName, vxlanName } from '../../src/network/overlay';
import { inNetns, Lab, type Container } from './lab';

describe('overlay across two hosts (network namespaces)', () => {
  const lab = new Lab();
  let a1: Container, a2: Container, a3: Container, b1: Container, b2: Container;

  beforeAll(async () => {
    await lab.addHosts();
    lab.addNetwork('a');
    lab.addNetwork('b');
    a1 = lab.addContainer('a1', 'h1', 'a');
    a2 = lab.addContainer('a2', 'h2', 'a');
    a3 = lab.addContainer('a3', 'h2', 'a');
    b1 = lab.addContainer('b1', 'h1', 'b');
    b2 = lab.addContainer('b2', 'h2', 'b');
    await lab.converge();
    for (const c of lab.containers) await lab.start(c);
    for (const c of lab.containers) await lab.serve(c);
  });

  afterAll(async () => {
    expect(await lab.dispose()).toEqual([]);
    expect(await lab.leftovers()).toEqual([]);
  });

  it('carries HTTP between containers on different hosts, both ways, at the inner MTU', async () => {
    expect(await lab.fetch('a1', a2.ip)).toBe('a2');
    expect(await lab.fetch('a3', a1.ip)).toBe('a1');
    expect(await lab.fetch('b2', b1.ip)).toBe('b1');
    expect((await lab.fetch('a1', a3.ip, 'big')).length).toBe(300_000);
    const link = JSON.parse(await inNetns(lab.ns('a1'), 'ip', '-json', 'link', 'show', 'eth0'))[0];
    expect(link).toMatchObject({ mtu: 1450, address: macForIp(a1.ip) });
  });

  it('resolves remote containers from the programmed entries, not by flooding', async () => {
    const seen = await readOverlay(lab.host('h1'));
    const vx = vxlanName(lab.prefix, lab.vni('a'));
    const neighbours = seen.neighbours.filter((n) => n.dev === vx).map((n) => [n.dst, n.lladdr, n.state]);
    expect(neighbours.sort()).toEqual([
      [a2.ip, macForIp(a2.ip), ['PERMANENT']],
      [a3.ip, macForIp(a3.ip), ['PERMANENT']],
    ].sort());
    const fdb = seen.fdb.filter((e) => e.ifname === vx && e.dst).map((e) => [e.mac, e.dst]);
    expect(fdb.sort()).toEqual([[macForIp(a2.ip), lab.underlay.h2], [macForIp(a3.ip), lab.underlay.h2]].sort());
  });

  it('keeps two networks apart, even for a container that routes to the other subnet', async () => {
    const [aSubnet, bSubnet] = [a2.address, b2.address].map((addr) => addr.replace(/\.\d+\//, '.0/'));
    await inNetns(lab.ns('b1'), 'ip', 'route', 'add', aSubnet, 'dev', 'eth0');
    await inNetns(lab.ns('a1'), 'ip', 'route', 'add', bSubnet, 'dev', 'eth0');
    const crossings = [lab.fetch('b1', a2.ip), lab.fetch('a1', b2.ip), lab.fetch('a1', b1.ip)];
    for (const c of await Promise.allSettled(crossings)) expect(c).toMatchObject({ status: 'rejected', reason: { message: expect.stringContaining('No route to host') } });
    expect(await lab.fetch('b1', b2.ip)).toBe('b2');
  });

  it('is idempotent: a second pass finds nothing to do', async () => {
    expect(await applyOverlay(lab.host('h1'), lab.wanted('h1'))).toEqual({ ip: [], bridge: [] });
    expect(await applyOverlay(lab.host('h2'), lab.wanted('h2'))).toEqual({ ip: [], bridge: [] });
  });

  it('drops a departed container from the peers, and a network from a host that no longer has a task on it', async () => {
    await detachContainer(lab.host('h2'), a3.address);
    await detachContainer(lab.host('h2'), a3.address);
    await lab.converge(['a3', 'b1']);
    const h1 = await readOverlay(lab.host('h1'));
    expect(h1.neighbours.filter((n) => n.dst === a3.ip)).toEqual([]);
    // Only the programmed entries (with a destination); the bridge's own learned ones age out.
    expect(h1.fdb.filter((e) => e.mac === macForIp(a3.ip) && e.dst)).toEqual([]);
    expect(h1.links.map((l) => l.ifname).filter((n) => n.startsWith(lab.prefix)).sort()).toEqual(
      [`${lab.prefix}b${lab.vni('a')}`, `${lab.prefix}v${lab.vni('a')}`, vethName(lab.prefix, a1.address)].sort(),
    );
    expect(await lab.fetch('a1', a2.ip)).toBe('a2');
    await expect(lab.fetch('b2', b1.ip)).rejects.toThrow();
  });
});
