import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { TestCluster, type TestHost } from '../helpers/cluster';
import { buildTestImage } from '../helpers/test-node';
import { IDLE, thenIdle } from '../helpers/workloads';

// A manager (h1) and two workers (h2, h3), each a network namespace with its own shoald: services
// on overlay networks reach each other across them through their VIPs.
let cluster: TestCluster;
let work: string;
const IMAGE = 'shoal-test:latest';
/** busybox httpd answering with the container's hostname (its task's container id), and at /cgi-bin/peer with the client's address, in the background. */
const WHOAMI = thenIdle(
  'hostname > /www/index.html && mkdir -p /www/cgi-bin && printf "#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho \\$REMOTE_ADDR\\n" > /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && httpd -p 80 -h /www',
);

const h = (name: string) => cluster.host(name);
// The commands under test go through the CLI; what the test reads, through the API in-process.
const manager = () => h('h1');
const running = async (service: string) =>
  (await manager().api((c) => c.listTasks({ service }))).tasks.filter((t) => t.desired_state === 'RUNNING' && t.status!.state === 'RUNNING');
const network = (name: string) => manager().api((c) => c.getNetwork(name));
const netnsDir = (host: TestHost) => path.join(host.dataDir, 'netns');
const nodeIds = new Map<string, TestHost>();
const hostOf = (t: Task__Output) => nodeIds.get(t.node_id)!;

async function vip(service: string, name: string): Promise<string> {
  const s = await manager().api((c) => c.getService(service));
  const id = (await network(name)).id;
  return s.virtual_ips.find((v) => v.network_id === id)!.address.split('/')[0];
}

/** Runs a shell script inside a task's container (runc exec), returning its stdout; throws on failure. */
function inContainer(t: Task__Output, script: string): string {
  const host = hostOf(t);
  const r = spawnSync('runc', ['--root', host.runcRoot, 'exec', t.id, 'sh', '-c', script], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`runc exec ${t.id} on ${host.name} exited ${r.status}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** n HTTP GETs from the client container, each answer (a hostname) or "failed" on a line. */
function requests(client: Task__Output, ip: string, n: number): string[] {
  const script = `i=0; while [ $i -lt ${n} ]; do timeout 5 wget -q -O - http://${ip}/ || echo failed; i=$((i+1)); done`;
  return inContainer(client, script).trim().split('\n');
}

/** `nslookup -type=a NAME` in the container, through its resolv.conf: the addresses, or what it said instead. */
function lookup(t: Task__Output, name: string): string[] {
  const out = inContainer(t, `nslookup -type=a ${name} 2>&1 || true`);
  const addresses = [...out.matchAll(/^Address: (\d+\.\d+\.\d+\.\d+)$/gm)].map((m) => m[1]).sort();
  return addresses.length ? addresses : [out.trim()];
}

/** One HTTP GET from the test's own namespace, outside every host: the answer, or "failed". */
function fromOutside(hostPort: string, page = ''): string {
  const r = spawnSync('busybox', ['timeout', '5', 'wget', '-q', '-O', '-', `http://${hostPort}/${page}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'failed';
}

const eth0 = (t: Task__Output) => inContainer(t, 'ip -o -4 addr show eth0').match(/inet (\d+\.\d+\.\d+\.\d+)\//)![1];

const tally = (answers: string[]) => answers.reduce<Record<string, number>>((acc, a) => ({ ...acc, [a]: (acc[a] ?? 0) + 1 }), {});
const hostnames = (tasks: Task__Output[]) => tasks.map((t) => t.id.slice(0, 12)).sort();

/** What shoal left of its overlay on a host: devices, namespaces, their mounts and nft tables. */
function leftovers(host: TestHost): string[] {
  const links = (JSON.parse(host.exec('ip', '-json', 'link', 'show').stdout) as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.startsWith('shoal'));
  const dir = netnsDir(host);
  const netns = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.split(' ')[1]?.startsWith(`${dir}/`));
  const tables = host.exec('nft', 'list', 'tables').stdout.split('\n').filter((t) => t && t !== 'table ip filter');
  // iptables-nft keeps its filter table once made; only shoal's rule in it counts.
  const rules = host.exec('iptables', '-S', 'FORWARD').stdout.split('\n').filter((r) => r.includes('shoal'));
  return [
    ...links.map((l) => `link ${l}`),
    ...netns.map((n) => `netns ${n}`),
    ...mounts.map((m) => `mount ${m}`),
    ...tables.map((t) => `nft ${t}`),
    ...rules.map((r) => `iptables ${r}`),
  ];
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-overlay-'));
  cluster = await TestCluster.create({ managers: 1, workers: 2 });
  const image = buildTestImage(work);
  for (const host of cluster.hosts) host.ok('image', 'load', image);
  for (const host of cluster.hosts) nodeIds.set((await host.api((c) => c.info())).node_id, host);
  // As Docker leaves a host: bridged traffic passes a FORWARD chain that drops by default.
  for (const host of cluster.hosts) expect(host.exec('iptables', '-P', 'FORWARD', 'DROP').code).toBe(0);
}, 300_000);

afterAll(async () => {
  fs.rmSync(work, { recursive: true, force: true });
  await cluster?.destroy();
}, 180_000);

describe('services on overlay networks across 3 hosts', { timeout: 300_000 }, () => {
  let client: Task__Output;
  let apiVip: string;

  it('refuses a service on a network that does not exist, or on one network twice, and stores nothing', async () => {
    manager().ok('network', 'create', 'backend');
    const unknown = manager().shoal('service', 'create', '-d', '--name', 'bad', '--network', 'nope', IMAGE, ...IDLE);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('task_template.networks[0].target: network nope not found');
    const twice = manager().shoal('service', 'create', '-d', '--name', 'bad', '--network', 'backend', '--network', (await network('backend')).id, IMAGE, ...IDLE);
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toContain('task_template.networks[1].target: network backend is listed twice');
    expect((await manager().api((c) => c.listServices())).services).toEqual([]);
  });

  it('balances a client on one host over the 3 replicas on the other two, each answering with its own hostname', async () => {
    manager().ok('service', 'create', '--name', 'api', '--network', 'backend', '--replicas', '3', '--constraint', 'node.hostname!=h3', IMAGE, ...WHOAMI);
    manager().ok('service', 'create', '--name', 'client', '--network', 'backend', '--constraint', 'node.hostname==h3', IMAGE, ...IDLE);
    [client] = await running('client');
    const replicas = await running('api');
    expect(new Set(replicas.map((t) => hostOf(t).name))).toEqual(new Set(['h1', 'h2']));
    apiVip = await vip('api', 'backend');
    // The worker programs what the dispatcher sends it; the replicas' servers start on their own.
    await cluster.waitFor(() => Object.keys(tally(requests(client, apiVip, 20))).sort().join() === hostnames(replicas).join(), { what: 'every replica answering through the VIP' });
    const counts = tally(requests(client, apiVip, 300));
    expect(Object.keys(counts).sort()).toEqual(hostnames(replicas));
    for (const n of Object.values(counts)) expect(n).toBeLessThanOrEqual(150);
  });

  it('drops a removed replica from the rotation and keeps the others in it', async () => {
    const before = await running('api');
    manager().ok('service', 'scale', 'api=2');
    const kept = await running('api');
    expect(kept).toHaveLength(2);
    const gone = hostnames(before.filter((t) => !kept.some((k) => k.id === t.id)));
    await cluster.waitFor(() => !requests(client, apiVip, 20).some((a) => gone.includes(a)), { what: 'the removed replica out of rotation' });
    expect(Object.keys(tally(requests(client, apiVip, 60))).sort()).toEqual(hostnames(kept));
  });

  it('keeps two networks apart, even for a container with a route to the other one', async () => {
    manager().ok('network', 'create', 'other');
    manager().ok('service', 'create', '--name', 'lone', '--network', 'other', '--constraint', 'node.hostname==h2', IMAGE, ...WHOAMI);
    const [lone] = await running('lone');
    const loneIp = eth0(lone);
    // A container on the same network reaches it: lone answers.
    expect(requests(lone, loneIp, 1)).toEqual([lone.id.slice(0, 12)]);
    const otherSubnet = (await network('other')).subnet;
    const route = spawnSync('nsenter', [`--net=${path.join(netnsDir(h('h3')), client.id)}`, 'ip', 'route', 'add', otherSubnet, 'dev', 'eth0'], { encoding: 'utf8' });
    expect(route.stderr).toBe('');
    expect(requests(client, loneIp, 3)).toEqual(['failed', 'failed', 'failed']);
    expect(requests(lone, apiVip, 3)).toEqual(['failed', 'failed', 'failed']);
    // A host with no task on a network holds none of its devices.
    const vni = (await network('other')).vni;
    expect(leftovers(h('h3')).filter((l) => l.endsWith(`b${vni}`) || l.endsWith(`v${vni}`))).toEqual([]);
  });

  it('resolves, in a container, its networks’ service names to VIPs, tasks.<name> to every running task and task names to their address, and no other network’s names', async () => {
    const [lone] = await running('lone');
    const replicas = await running('api');
    expect(inContainer(client, 'cat /etc/resolv.conf')).toMatch(/^nameserver 127\.0\.0\.11$/m);
    expect(lookup(client, 'api')).toEqual([apiVip]);
    const replicaIps = replicas.map(eth0).sort();
    await cluster.waitFor(() => lookup(client, 'tasks.api').join() === replicaIps.join(), { what: 'tasks.api giving every running replica' });
    for (const t of replicas) expect(lookup(client, `api.${t.slot}.${t.id}`)).toEqual([eth0(t)]);
    // A name is as good as the VIP it stands for.
    expect(hostnames(replicas)).toContain(inContainer(client, 'wget -q -O - http://api/').trim());
    // lone is on the other network: its names are not the client's to resolve, nor api's lone's.
    // They go to the host's resolvers, which do not know them (or cannot be reached from the host).
    const unknown = (name: string) => [expect.stringMatching(new RegExp(`can't find ${name}: (NXDOMAIN|SERVFAIL)`))];
    expect(lookup(client, 'lone')).toEqual(unknown('lone'));
    expect(lookup(client, 'tasks.lone')).toEqual(unknown('tasks.lone'));
    expect(lookup(lone, 'api')).toEqual(unknown('api'));
    expect(lookup(lone, 'lone')).toEqual([await vip('lone', 'other')]);
  });

  it('joins a network with --network-add and leaves it with --network-rm, by rolling update', async () => {
    const [lone] = await running('lone');
    const loneIp = eth0(lone);
    const notOn = manager().shoal('service', 'update', '--network-rm', 'other', 'api');
    expect(notOn.code).not.toBe(0);
    expect(notOn.stderr).toContain('--network-rm: service api is not on network other');
    manager().ok('service', 'update', '--network-add', 'other', 'client');
    [client] = await running('client');
    expect(inContainer(client, 'ip -o -4 addr show eth1')).toContain((await network('other')).subnet.replace(/\.0\/24$/, '.'));
    await cluster.waitFor(() => requests(client, loneIp, 1)[0] === lone.id.slice(0, 12), { what: 'lone reached over the network added' });
    await cluster.waitFor(() => requests(client, apiVip, 1)[0] !== 'failed', { what: 'api still reached on the first network' });
    manager().ok('service', 'update', '--network-rm', 'other', 'client');
    [client] = await running('client');
    expect(inContainer(client, 'ip -o link').split('\n').filter((l) => / eth\d+@/.test(l))).toHaveLength(1);
    expect(requests(client, loneIp, 1)).toEqual(['failed']);
  });

  it('keeps containers networked and resolving across a kill -9 of shoald, and removes what a task made when it went meanwhile', async () => {
    const h2 = h('h2');
    const [lone] = await running('lone');
    const otherVni = (await network('other')).vni;
    await h2.kill('SIGKILL');
    manager().ok('service', 'rm', 'lone');
    await h2.start();
    await cluster.waitFor(() => !h2.containerIds().includes(lone.id) && !leftovers(h2).some((l) => l === `netns ${lone.id}` || l.endsWith(`b${otherVni}`)), {
      what: `lone's container, namespace and network devices gone from h2`,
    });
    // The replica on h2 was adopted with its namespace and still answers through the VIP.
    const kept = await running('api');
    await cluster.waitFor(() => Object.keys(tally(requests(client, apiVip, 20))).sort().join() === hostnames(kept).join(), { what: 'both replicas answering after the restart' });
    // The resolver's sockets died with shoald: the next one serves the adopted client again.
    await h('h3').kill('SIGKILL');
    await h('h3').start();
    await cluster.waitFor(() => lookup(client, 'api').join() === apiVip, { what: 'the client resolving api after its shoald came back' });
  });

  it('answers a port published through the mesh on every host, one in host mode only where its task runs, and lets containers reach the outside', async () => {
    // web's one replica runs on h2; h1 and h3 run none of it and answer all the same.
    manager().ok('service', 'create', '--name', 'web', '--network', 'backend', '--constraint', 'node.hostname==h2', '--publish', '8080:80', IMAGE, ...WHOAMI);
    manager().ok('service', 'create', '--name', 'edge', '--constraint', 'node.hostname==h3', '--publish', 'mode=host,published=9090,target=80', IMAGE, ...WHOAMI);
    try {
      await servePublished();
    } finally {
      for (const s of ['web', 'edge']) manager().shoal('service', 'rm', s);
    }
    // With nothing published, no host answers on the ports any more.
    await cluster.waitFor(() => fromOutside(`${h('h3').addr}:8080`) === 'failed', { what: 'port 8080 closed after web went' });
  });

  async function servePublished(): Promise<void> {
    const [web] = await running('web');
    const [edge] = await running('edge');
    for (const host of cluster.hosts) {
      await cluster.waitFor(() => fromOutside(`${host.addr}:8080`) === web.id.slice(0, 12), { what: `web answering on ${host.name}:8080` });
    }
    await cluster.waitFor(() => fromOutside(`${h('h3').addr}:9090`) === edge.id.slice(0, 12), { what: 'edge answering on h3:9090' });
    expect(fromOutside(`${h('h1').addr}:9090`)).toBe('failed');
    // A replica on the host asked keeps the client's address; one elsewhere sees the asking host's.
    // (httpd listens on IPv6 too, and says so: [::ffff:10.0.0.1].)
    const peer = (hostPort: string) => fromOutside(hostPort, 'cgi-bin/peer').replace(/^\[::ffff:(.*)\]$/, '$1');
    expect(peer(`${h('h2').addr}:8080`)).toBe(cluster.bridgeAddr);
    expect(peer(`${h('h3').addr}:9090`)).toBe(cluster.bridgeAddr);
    const h1Ingress = (await network('ingress')).subnet.split('.').slice(0, 3).join('.');
    expect(peer(`${h('h1').addr}:8080`)).toMatch(new RegExp(`^${h1Ingress.replace(/\./g, '\\.')}\\.\\d+$`));
    // Out through its host's address: the outside has no route back to a container's subnet.
    const outside = spawn('busybox', ['httpd', '-f', '-p', `${cluster.bridgeAddr}:18080`, '-h', work], { stdio: 'ignore' });
    try {
      fs.writeFileSync(path.join(work, 'index.html'), 'outside\n');
      await cluster.waitFor(() => inContainer(web, `timeout 5 wget -q -O - http://${cluster.bridgeAddr}:18080/ || echo failed`).trim() === 'outside', { what: 'web reaching a server outside the cluster' });
      expect(inContainer(edge, `timeout 5 wget -q -O - http://${cluster.bridgeAddr}:18080/ || echo failed`).trim()).toBe('outside');
    } finally {
      outside.kill();
    }
  }

  it('leaves no device, namespace, mount or rule on any host once the services and networks are removed', async () => {
    for (const s of ['api', 'client']) manager().ok('service', 'rm', s);
    await cluster.waitFor(() => cluster.hosts.every((host) => host.containerIds().length === 0), { what: 'every container gone' });
    // Addresses are released by the leader once the tasks have ended.
    for (const n of ['backend', 'other']) await cluster.waitFor(() => manager().shoal('network', 'rm', n).code === 0, { what: `network ${n} removed` });
    await cluster.waitFor(() => cluster.hosts.every((host) => leftovers(host).length === 0), { what: 'no overlay left on any host' }).catch(() => {
      throw new Error(cluster.hosts.map((host) => `${host.name}: ${leftovers(host).join(', ')}`).join('\n'));
    });
  });
});
