/**
 * Overlay benchmark on hosts in network namespaces (deploy/cluster.sh): HTTP requests per second
 * from a container on one host to a one-replica service on another, through the service's VIP
 * (nftables DNAT in the client's namespace) and straight to the replica's address, over the VXLAN
 * overlay; and the time from a new replica being reported running to the first request the VIP
 * sends it. busybox httpd closes every connection, so each request is a new connection, the case
 * where the VIP's DNAT costs most. The load runs in the client container's network namespace.
 * Prints each run and the medians; asserts nothing.
 *
 *   node dist/bench/overlay.js [--runs 3] [--seconds 5]
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { Task__Output } from '../src/gen/shoal/v1/Task';
import { TestCluster, type TestHost } from '../test/helpers/cluster';
import { buildTestImage } from '../test/helpers/test-node';
import { IDLE, thenIdle } from '../test/helpers/workloads';
import { printRuns } from './stats';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, seconds: { type: 'string', default: '5' } } });
const runs = Number(values.runs);
const seconds = Number(values.seconds);
const CONCURRENCY = 8;
const IMAGE = 'shoal-test:latest';
const WHOAMI = thenIdle('hostname > /www/index.html && httpd -p 80 -h /www');

/** Requests with CONCURRENCY connections at a time for argv[2] ms against http://argv[1]/; prints {ok, failed}. */
const LOAD = `
const http = require('node:http');
const [ip, ms] = [process.argv[1], Number(process.argv[2])];
const end = Date.now() + ms;
let ok = 0, failed = 0;
const one = () => new Promise((done) => {
  const req = http.get({ host: ip, port: 80, path: '/', agent: false, timeout: 5000 }, (res) => { res.resume(); res.on('end', () => { ok++; done(); }); });
  req.on('error', () => { failed++; done(); });
  req.on('timeout', () => req.destroy());
});
const worker = async () => { while (Date.now() < end) await one(); };
Promise.all(Array.from({ length: ${CONCURRENCY} }, worker)).then(() => console.log(JSON.stringify({ ok, failed })));
`;

/** One request after another for argv[2] ms; prints "<epoch ms> <body>" per answer. */
const WATCH = `
const http = require('node:http');
const [ip, ms] = [process.argv[1], Number(process.argv[2])];
const end = Date.now() + ms;
const one = () => new Promise((done) => {
  const req = http.get({ host: ip, port: 80, path: '/', agent: false, timeout: 2000 }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => { console.log(Date.now() + ' ' + body.trim()); done(); });
  });
  req.on('error', () => done());
  req.on('timeout', () => req.destroy());
});
(async () => { while (Date.now() < end) await one(); })();
`;

const netnsOf = (host: TestHost, taskId: string) => path.join(path.dirname(host.runcRoot), 'netns', taskId);

function load(netns: string, ip: string): { ok: number; failed: number } {
  const r = spawnSync('nsenter', [`--net=${netns}`, process.execPath, '-e', LOAD, ip, String(seconds * 1000)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`load generator failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function watch(netns: string, ip: string, ms: number): Promise<{ at: number; body: string }[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${netns}`, process.execPath, '-e', WATCH, ip, String(ms)]);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', () =>
      resolve(
        out
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => ({ at: Number(l.slice(0, l.indexOf(' '))), body: l.slice(l.indexOf(' ') + 1) })),
      ),
    );
  });
}

async function once(cluster: TestCluster, hostOf: (t: Task__Output) => TestHost): Promise<Record<string, number>> {
  const m = cluster.hosts[0];
  const running = async (service: string) => (await m.api((c) => c.listTasks({ service }))).tasks.filter((t) => t.desired_state === 'RUNNING' && t.status!.state === 'RUNNING');
  m.ok('network', 'create', 'bench');
  try {
    m.ok('service', 'create', '--name', 'one', '--network', 'bench', '--constraint', 'node.hostname!=h3', IMAGE, ...WHOAMI);
    m.ok('service', 'create', '--name', 'client', '--network', 'bench', '--constraint', 'node.hostname==h3', IMAGE, ...IDLE);
    const [client] = await running('client');
    const [replica] = await running('one');
    const netns = netnsOf(hostOf(client), client.id);
    const service = await m.api((c) => c.getService('one'));
    const vip = service.virtual_ips[0].address.split('/')[0];
    const direct = spawnSync('runc', ['--root', hostOf(replica).runcRoot, 'exec', replica.id, 'ip', '-o', '-4', 'addr', 'show', 'eth0'], { encoding: 'utf8' }).stdout.match(/inet ([\d.]+)\//)![1];
    // Both paths answer before anything is measured.
    for (const ip of [vip, direct]) while (load(netns, ip).ok === 0);
    // Interleaved (direct, VIP, VIP, direct), so that a change in the machine's load meanwhile
    // weighs on both paths alike.
    const viaDirect = { ok: 0, failed: 0 };
    const viaVip = { ok: 0, failed: 0 };
    for (const [ip, sum] of [[direct, viaDirect], [vip, viaVip], [vip, viaVip], [direct, viaDirect]] as const) {
      const r = load(netns, ip);
      sum.ok += r.ok;
      sum.failed += r.failed;
    }

    // A second replica: from its report of running to the first request the VIP gives it.
    const watching = watch(netns, vip, 30_000);
    m.ok('service', 'scale', 'one=2');
    const added = (await running('one')).find((t) => t.id !== replica.id)!;
    const answers = await watching;
    const first = answers.find((a) => a.body === added.id.slice(0, 12));
    const toFirstRequest = first ? first.at - Date.parse(added.status!.timestamp) : NaN;
    return {
      'direct req/s': viaDirect.ok / (2 * seconds),
      'vip req/s': viaVip.ok / (2 * seconds),
      'vip / direct': viaVip.ok / viaDirect.ok,
      'failed requests': viaDirect.failed + viaVip.failed,
      'running → first balanced request (ms)': toFirstRequest,
    };
  } finally {
    for (const s of ['one', 'client']) m.shoal('service', 'rm', s);
    await cluster.waitFor(() => cluster.hosts.every((h) => h.containerIds().length === 0), { what: 'every container gone' });
    await cluster.waitFor(() => m.shoal('network', 'rm', 'bench').code === 0, { what: 'the network removed' });
  }
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-overlay-'));
  const cluster = await TestCluster.create({ managers: 1, workers: 2 });
  try {
    const image = buildTestImage(work);
    const byNode = new Map<string, TestHost>();
    for (const h of cluster.hosts) {
      h.ok('image', 'load', image);
      byNode.set((await h.api((c) => c.info())).node_id, h);
    }
    await printRuns(runs, '', () => once(cluster, (t) => byNode.get(t.node_id)!));
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    await cluster.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
