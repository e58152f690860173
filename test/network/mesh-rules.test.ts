import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyMesh, meshRuleset, removeMesh, type MeshState } from '../../src/network/mesh';

// The node's own table, checked by the nft of this machine in a namespace of its own.
const ns = `shoal-mesh-${randomBytes(3).toString('hex')}`;
const netns = `/run/netns/${ns}`;
const nft = (...args: string[]) => spawnSync('nsenter', [`--net=${netns}`, 'nft', ...args], { encoding: 'utf8' });

const state: MeshState = {
  ports: [
    { protocol: 'tcp', port: 8080, endpoints: [{ ip: '10.0.0.5', port: 80, remote: false }, { ip: '10.255.0.7', port: 80, remote: true }] },
    { protocol: 'udp', port: 5353, endpoints: [] },
  ],
  subnets: ['10.0.0.0/24', '10.255.0.0/24'],
  bridges: ['shoalb4097', 'shoalb4098'],
  bridgePrefix: 'shoalb',
};

beforeAll(() => {
  expect(spawnSync('ip', ['netns', 'add', ns]).status).toBe(0);
});
afterAll(() => {
  spawnSync('ip', ['netns', 'del', ns]);
});

describe('the node table: published ports, NAT out and isolation', () => {
  it('is accepted by nft, and holds every port, endpoint and bridge rule', async () => {
    await applyMesh('shoal-mesh', state, netns);
    const listed = nft('list', 'table', 'ip', 'shoal-mesh').stdout;
    expect(listed).toContain('tcp . 8080 : goto port-tcp-8080');
    expect(listed).toContain('udp . 5353');
    expect(listed).toMatch(/dnat to 10\.0\.0\.5:80/);
    // only the endpoint on another node is masqueraded
    expect(listed).toMatch(/meta mark set meta mark \| 0x00004000 meta l4proto tcp dnat to 10\.255\.0\.7:80/);
    expect(listed).not.toMatch(/mark .* dnat to 10\.0\.0\.5/);
    expect(listed).toMatch(/ip saddr \{ 10\.0\.0\.0\/24, 10\.255\.0\.0\/24 \} oifname != "shoalb\*" masquerade/);
    expect(listed).toContain('iifname "shoalb4097" oifname "shoalb*" oifname != "shoalb4097" drop');
  });

  it('is rewritten whole: a port gone is gone, and removal leaves no table', async () => {
    await applyMesh('shoal-mesh', { ...state, ports: [] }, netns);
    expect(nft('list', 'table', 'ip', 'shoal-mesh').stdout).not.toContain('8080');
    await removeMesh('shoal-mesh', netns);
    await removeMesh('shoal-mesh', netns);
    expect(nft('list', 'tables').stdout).not.toContain('shoal-mesh');
  });

  it('refuses bad input naming it', () => {
    expect(() => meshRuleset('shoal-mesh', { ...state, ports: [state.ports[0], state.ports[0]] })).toThrow('published port 8080/tcp is listed twice');
    expect(() => meshRuleset('shoal-mesh', { ...state, ports: [{ protocol: 'tcp', port: 0, endpoints: [] }] })).toThrow('port 0 must be 1–65535');
    expect(() => meshRuleset('shoal-mesh', { ...state, bridges: ['eth0'] })).toThrow('bridge "eth0" must be a name starting with shoalb');
    expect(() => meshRuleset('Bad Table', state)).toThrow('table "Bad Table"');
  });
});
