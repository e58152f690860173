import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/network/command';
import { applyVips, removeVips, type VipService, type VipTable } from '../../src/network/vip';
import { inNetns, Lab, netnsPath, type Container } from './lab';

/** How many of the responses each backend gave. */
const tally = (responses: string[]) => responses.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r]: (acc[r] ?? 0) + 1 }), {});

const listTables = async (netns: string) => (await run('nft', ['list', 'tables'], { netns })).trim();

describe('VIP load balancing in nftables over the overlay', () => {
  const lab = new Lab();
  let client: Container, backends: Container[], vip: string, table: VipTable;
  const service = (members: Container[]): VipService => ({ vip, protocol: 'tcp', port: 80, endpoints: members.map((c) => ({ ip: c.ip, port: 80 })) });

  beforeAll(async () => {
    await lab.addHosts();
    lab.addNetwork('a');
    client = lab.addContainer('client', 'h1', 'a');
    backends = [lab.addContainer('w1', 'h1', 'a'), lab.addContainer('w2', 'h2', 'a'), lab.addContainer('w3', 'h2', 'a')];
    vip = lab.ipam.allocateAddress('a').split('/')[0];
    await lab.converge();
    for (const c of lab.containers) await lab.start(c);
    for (const c of backends) await lab.serve(c);
    table = { name: `${lab.prefix}-vip`, netns: netnsPath(lab.ns('client')) };
  });

  afterAll(async () => {
    const errors: string[] = [];
    if (table) {
      try {
        await removeVips(table);
        await removeVips(table);
        expect(await listTables(table.netns!)).toBe('');
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    errors.push(...(await lab.dispose()));
    expect(errors).toEqual([]);
    expect(await lab.leftovers()).toEqual([]);
  });

  it('spreads connections to the VIP over every backend, on both hosts', async () => {
    await applyVips(table, [service(backends)]);
    const counts = tally(await lab.fetchMany('client', vip, 150));
    expect(Object.keys(counts).sort()).toEqual(['w1', 'w2', 'w3']);
    for (const n of Object.values(counts)) expect(n).toBeLessThanOrEqual(75);
  });

  it('drops a removed backend from the rotation at once', async () => {
    await applyVips(table, [service(backends.slice(0, 2))]);
    const counts = tally(await lab.fetchMany('client', vip, 60));
    expect(Object.keys(counts).sort()).toEqual(['w1', 'w2']);
  });

  it('refuses connections to a service with no backend instead of hanging', async () => {
    await applyVips(table, [service([])]);
    await expect(lab.fetch('client', vip)).rejects.toThrow(/Connection refused/);
  });

  it('keeps a single table, rewritten whole on every change', async () => {
    await applyVips(table, [service([backends[2]])]);
    await applyVips(table, [service([backends[2]])]);
    expect(await listTables(table.netns!)).toBe(`table ip ${table.name}`);
    expect(await lab.fetchMany('client', vip, 5)).toEqual(['w3', 'w3', 'w3', 'w3', 'w3']);
    const ruleset = await inNetns(lab.ns('client'), 'nft', 'list', 'table', 'ip', table.name);
    expect(ruleset).not.toContain(backends[0].ip);
  });

  it('takes every port of a service on port 0 and keeps the port, as a VIP without published ports does', async () => {
    await applyVips(table, [{ vip, protocol: 'tcp', port: 0, endpoints: backends.map((c) => ({ ip: c.ip, port: 0 })) }]);
    const counts = tally(await lab.fetchMany('client', vip, 60));
    expect(Object.keys(counts).sort()).toEqual(['w1', 'w2', 'w3']);
  });
});
