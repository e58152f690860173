import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { apiOf, runningOf, tasksOf, waitFor } from './observe';
import { useE2eNode } from './use-node';
import { IDLE } from '../helpers/workloads';
import { NODE_TEST_TIMEOUT_MS } from '../helpers/test-node';

const node = useE2eNode();
const IMAGE = 'shoal-test:latest';

const serviceNames = async () => (await apiOf(node).listServices()).services.map((s) => s.service!.spec!.name);
/** The PORTS cell of a service's row in `service ls`. */
const portsOf = (name: string) => {
  const row = node.ok('service', 'ls').split('\n').find((l) => l.split(/\s{3,}/)[1] === name);
  return row?.split(/\s{3,}/)[5] ?? '';
};

describe('published ports through the CLI', () => {
  it('an ingress port belongs to one service until an update or rm releases it; a port of 0 is picked from 30000–32767', async () => {
    node.ok('service', 'create', '--name', 'web', '-p', '18080:80', '--publish', 'mode=host,published=19090,target=90,protocol=udp', IMAGE, ...IDLE);
    expect(node.ok('service', 'ls').split('\n')[0]).toMatch(/^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\s+PORTS$/);
    expect(portsOf('web')).toBe('*:18080->80/tcp, *:19090->90/udp');

    const taken = node.shoal('service', 'create', '-d', '--name', 'copy', '-p', '18080:80', IMAGE, ...IDLE);
    expect(taken.code).not.toBe(0);
    expect(taken.stdout).toBe('');
    expect(taken.stderr).toBe('Error: invalid service spec: endpoint_spec.ports[0].published_port: published port 18080/tcp is already in use by service "web"\n');
    // Another protocol is another port; a host-mode port is not the whole cluster's.
    node.ok('service', 'create', '-d', '--name', 'udp', '-p', '18080:80/udp', '-p', 'mode=host,published=19090,target=90,protocol=udp', '--replicas', '0', IMAGE, ...IDLE);
    expect(await serviceNames()).toEqual(['udp', 'web']);

    node.ok('service', 'create', '--name', 'auto', '-p', '80', IMAGE, ...IDLE);
    const picked = (await apiOf(node).getService('auto')).spec!.endpoint_spec!.ports[0].published_port;
    expect(picked).toBeGreaterThanOrEqual(30000);
    expect(picked).toBeLessThanOrEqual(32767);
    expect(portsOf('auto')).toBe(`*:${picked}->80/tcp`);
    const json = JSON.parse(node.ok('service', 'ls', '--format', 'json')) as { spec: { name: string; endpoint_spec: unknown } }[];
    expect(json.find((s) => s.spec.name === 'auto')!.spec.endpoint_spec).toEqual({ mode: 'vip', ports: [{ protocol: 'tcp', target_port: 80, published_port: picked, publish_mode: 'ingress' }] });
    const [inspected] = JSON.parse(node.ok('service', 'inspect', 'web'));
    expect(inspected.spec.endpoint_spec.ports).toHaveLength(2);

    expect(node.fails('service', 'update', '-d', '--publish-rm', '18081', 'web')).toBe('Error: --publish-rm: service web does not publish 18081/tcp\n');
    node.ok('service', 'update', '-d', '--publish-rm', '18080', 'web');
    expect(portsOf('web')).toBe('*:19090->90/udp');
    node.ok('service', 'create', '-d', '--name', 'copy', '-p', '18080:80', '--replicas', '0', IMAGE, ...IDLE);
    node.ok('service', 'rm', 'copy');
    node.ok('service', 'update', '-d', '--publish-add', '18080:8080', 'web');
    expect(portsOf('web')).toBe('*:19090->90/udp, *:18080->8080/tcp');
  }, NODE_TEST_TIMEOUT_MS);

  it('refuses malformed ports naming the flag, and creates nothing', async () => {
    const cases: [string[], string][] = [
      [['-p', '8080:80/sctp'], "error: option '-p, --publish <port>' argument '8080:80/sctp' is invalid. --publish: the protocol must be tcp or udp, got \"sctp\"\n"],
      [['-p', 'published=80'], "error: option '-p, --publish <port>' argument 'published=80' is invalid. --publish: target=PORT is required in \"published=80\"\n"],
      [['--endpoint-mode', 'rr'], "error: option '--endpoint-mode <mode>' argument 'rr' is invalid. --endpoint-mode must be vip or dnsrr, got \"rr\"\n"],
      // What only the daemon can judge names the spec's field.
      [['-p', 'mode=host,target=80'], 'Error: invalid service spec: endpoint_spec.ports[0].published_port: must be 1–65535\n'],
      [['--endpoint-mode', 'dnsrr', '-p', '8080:80'], 'Error: invalid service spec: endpoint_spec.ports[0].publish_mode: must be host when endpoint_spec.mode is dnsrr: the routing mesh needs a VIP\n'],
      [['-p', '8080:80', '-p', '8080:81'], 'Error: invalid service spec: endpoint_spec.ports[1].published_port: 8080/tcp is already published by endpoint_spec.ports[0]\n'],
    ];
    for (const [flags, message] of cases) expect(node.fails('service', 'create', '-d', '--name', 'bad', ...flags, IMAGE, ...IDLE), flags.join(' ')).toBe(message);
    expect(await serviceNames()).toEqual([]);
  }, NODE_TEST_TIMEOUT_MS);

  it('two tasks publishing one host port on a one-node cluster: one runs, the other waits and says why', async () => {
    node.ok('service', 'create', '-d', '--name', 'edge', '--replicas', '2', '-p', 'mode=host,published=19091,target=80', IMAGE, ...IDLE);
    const [pending] = await waitFor('one edge task running and the other pending with a reason', async () => {
      const tasks = await tasksOf(node, 'edge');
      const waiting = tasks.filter((t) => !t.node_id && t.schedule_error);
      return (await runningOf(node, 'edge')).length === 1 && waiting.length === 1 && waiting;
    });
    expect(pending.schedule_error).toBe('no suitable node (host port 19091/tcp in use on 1 node)');
    expect(node.ok('service', 'ps', '--no-trunc', 'edge')).toMatch(/edge\.\d\s+shoal-test:latest\s+Running\s+Pending .* "no suitable node \(host port 19091\/tcp in use on 1 node\)"/);
    // Another service publishing it on another port is placed beside it.
    node.ok('service', 'create', '--name', 'beside', '-p', 'mode=host,published=19092,target=80', IMAGE, ...IDLE);
    expect(await runningOf(node, 'beside')).toHaveLength(1);
  }, NODE_TEST_TIMEOUT_MS);
});

/** `nslookup -type=a NAME` in the task's container: the addresses it got, sorted. */
function lookup(t: Task__Output, name: string): string[] {
  const r = spawnSync('runc', ['--root', node.runcRoot, 'exec', t.id, 'sh', '-c', `nslookup -type=a ${name} 2>&1 || true`], { encoding: 'utf8', timeout: 60_000 });
  return [...r.stdout.matchAll(/^Address: (\d+\.\d+\.\d+\.\d+)$/gm)].map((m) => m[1]).sort();
}

describe('endpoint mode through the CLI', () => {
  it('a dnsrr service resolves to its task addresses (those ps shows), a vip one to its VIP, and a switch back drops the VIP', async () => {
    node.ok('network', 'create', '--subnet', '10.31.0.0/24', 'rrnet');
    try {
      node.ok('service', 'create', '--name', 'cache', '--network', 'rrnet', '--endpoint-mode', 'dnsrr', '--replicas', '2', IMAGE, ...IDLE);
      node.ok('service', 'create', '--name', 'client', '--network', 'rrnet', IMAGE, ...IDLE);
      const [client] = await runningOf(node, 'client');
      const listed = await apiOf(node).listTasks({ service: 'cache' });
      const ips = listed.task_networks.flatMap((a) => a.networks.map((n) => n.address.split('/')[0])).sort();
      expect(ips).toHaveLength(2);
      expect((await apiOf(node).getService('cache')).virtual_ips).toEqual([]);
      const ps = node.ok('service', 'ps', 'cache');
      expect(ps.split('\n')[0]).toMatch(/CURRENT STATE\s+ADDRESSES\s+ERROR$/);
      for (const ip of ips) expect(ps).toContain(ip);
      expect(JSON.parse(node.ok('service', 'ps', '--format', 'json', 'cache')).flatMap((t: { addresses: { address: string }[] }) => t.addresses.map((a) => a.address.split('/')[0])).sort()).toEqual(ips);
      await waitFor('cache resolving to its tasks', () => lookup(client, 'cache').join() === ips.join());
      expect(lookup(client, 'tasks.cache')).toEqual(ips);

      node.ok('service', 'update', '--endpoint-mode', 'vip', 'cache');
      const vip = await waitFor('a VIP for cache', async () => (await apiOf(node).getService('cache')).virtual_ips[0]?.address.split('/')[0]);
      await waitFor('cache resolving to its VIP', () => lookup(client, 'cache').join() === vip);

      node.ok('service', 'update', '--endpoint-mode', 'dnsrr', 'cache');
      await waitFor('cache resolving to its tasks again', () => lookup(client, 'cache').join() === ips.join());
      await waitFor('the VIP released', async () => (await apiOf(node).getService('cache')).virtual_ips.length === 0);
      expect(lookup(client, 'cache')).not.toContain(vip);
    } finally {
      node.shoal('service', 'rm', 'cache', 'client');
      await waitFor('the network free of tasks', () => node.shoal('network', 'rm', 'rrnet').code === 0, 60_000);
    }
  }, NODE_TEST_TIMEOUT_MS);
});
