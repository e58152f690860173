/**
 * Rolling-update benchmark on hosts in network namespaces (a manager and two workers, as
 * deploy/cluster.sh makes them): a service of --replicas replicas publishing port 8080 through the
 * routing mesh is rolled to a new image with parallelism 10, stop-first and then start-first,
 * while a client outside the cluster sends requests to one host's published port the whole time.
 * Prints, per run, the time to create the service (the floor: the same containers started from
 * nothing), the time of each rollout and the requests that failed during each; then the medians.
 * Asserts nothing.
 *
 *   node dist/bench/rollout.js [--runs 3] [--replicas 50] [--health]
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { TestCluster, type TestHost } from '../test/helpers/cluster';
import { buildTestImage } from '../test/helpers/test-node';
import { thenIdle } from '../test/helpers/workloads';
import { printRuns } from './stats';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, replicas: { type: 'string', default: '50' }, health: { type: 'boolean', default: false } } });
const runs = Number(values.runs);
const replicas = Number(values.replicas);
const CONCURRENCY = 4;
const WHOAMI = thenIdle('hostname > /www/index.html && httpd -p 80 -h /www');
/**
 * No health check: each is a `runc exec` of about 0.1 s of CPU, and 50 of them every 2 s took both
 * cores (a 50-replica create then took 126 s, a rollout 415 s). httpd listens within milliseconds
 * of its start, well before the nodes hear that the task runs; `--health` adds one to measure that.
 */
const HEALTH = values.health ? ['--health-cmd', 'wget -q -O /dev/null http://127.0.0.1/', '--health-interval', '2s'] : [];

/**
 * Requests to http://argv[1]/ with CONCURRENCY connections at a time until SIGTERM; then prints
 * {ok, failed, errors} (errors: the failures' messages, counted).
 */
const LOAD = `
const http = require('node:http');
const target = process.argv[1];
let ok = 0, failed = 0, stop = false;
const errors = {};
const fail = (why) => { failed++; errors[why] = (errors[why] || 0) + 1; };
const one = () => new Promise((done) => {
  const req = http.get('http://' + target + '/', { agent: false, timeout: 5000 }, (res) => {
    res.resume();
    res.on('end', () => { if (res.statusCode === 200) ok++; else fail('HTTP ' + res.statusCode); done(); });
  });
  req.on('error', (e) => { fail(e.code || e.message); done(); });
  req.on('timeout', () => req.destroy(new Error('timeout')));
});
const worker = async () => { while (!stop) await one(); };
const all = Promise.all(Array.from({ length: ${CONCURRENCY} }, worker));
process.on('SIGTERM', () => { stop = true; all.then(() => console.log(JSON.stringify({ ok, failed, errors }))); });
`;

interface Load {
  stop(): Promise<{ ok: number; failed: number; errors: Record<string, number> }>;
}

function startLoad(target: string): Load {
  const child = spawn(process.execPath, ['-e', LOAD, target], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return {
    async stop() {
      child.kill('SIGTERM');
      await exited;
      return JSON.parse(out);
    },
  };
}

/** Seconds until `done` holds, polled through the API (a CLI that waits has a time limit of its own). */
async function secondsUntil(cluster: TestCluster, what: string, done: () => Promise<boolean>): Promise<number> {
  const t0 = performance.now();
  await cluster.waitFor(done, { what, timeoutMs: 900_000 });
  return (performance.now() - t0) / 1000;
}

async function once(cluster: TestCluster, run: number): Promise<Record<string, number>> {
  const m = cluster.hosts[0];
  const target = `${m.addr}:8080`;
  const result: Record<string, number> = {};
  const web = () => m.api((c) => c.getService('web'));
  const allRunning = async () => (await m.api((c) => c.listTasks({ service: 'web' }))).tasks.filter((t) => t.desired_state === 'RUNNING' && t.status!.state === 'RUNNING').length === replicas;
  try {
    const started = secondsUntil(cluster, `${replicas} replicas running`, allRunning);
    m.ok('service', 'create', '-d', '--name', 'web', '--replicas', String(replicas), '--publish', '8080:80', '--stop-grace-period', '2s', ...HEALTH, 'shoal-test:v1', ...WHOAMI);
    result['create (s)'] = await started;
    for (const [order, image] of [['stop-first', 'shoal-test:v2'], ['start-first', 'shoal-test:v1']] as const) {
      const load = startLoad(target);
      // The load runs a moment before and after, so that the rollout's edges are inside it.
      await new Promise((r) => setTimeout(r, 1000));
      const rolled = secondsUntil(cluster, `the ${order} rollout`, async () => (await web()).update_status?.state === 'completed' && (await allRunning()));
      m.ok('service', 'update', '-d', '--image', image, '--update-parallelism', '10', '--update-order', order, '--update-monitor', '1s', 'web');
      result[`${order} rollout (s)`] = await rolled;
      await new Promise((r) => setTimeout(r, 1000));
      const { ok, failed, errors } = await load.stop();
      result[`${order} requests`] = ok + failed;
      result[`${order} failed`] = failed;
      if (failed) console.log(`  run ${run} ${order}: failures ${JSON.stringify(errors)}`);
    }
    result['rollout / create'] = result['stop-first rollout (s)'] / result['create (s)'];
    return result;
  } finally {
    m.shoal('service', 'rm', 'web');
    await cluster.waitFor(() => cluster.hosts.every((h: TestHost) => h.containerIds().length === 0), { what: 'every container gone', timeoutMs: 180_000 });
  }
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-rollout-'));
  const cluster = await TestCluster.create({ managers: 1, workers: 2 });
  try {
    for (const tag of ['shoal-test:v1', 'shoal-test:v2']) {
      const image = buildTestImage(work, 'oci', tag);
      for (const h of cluster.hosts) h.ok('image', 'load', image);
    }
    await printRuns(runs, ` (${replicas} replicas, parallelism 10)`, (run) => once(cluster, run));
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    await cluster.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
