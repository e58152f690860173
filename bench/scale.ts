/**
 * Control-plane scale benchmark: 3 real managers, each with its etcd member, on hosts in network
 * namespaces (deploy/cluster.sh), and --nodes simulated workers in one child process
 * (bench/sim-workers.ts: the real join flow and the real Agent over TLS, an executor that starts
 * nothing). The managers are drained, so every task goes to a simulated node. Per run it creates
 * --tasks replicas spread over --services services through the control API, and prints:
 *
 *   - create → all RUNNING (s), and when every task was placed (placements per second);
 *   - scale to 0 (the CLI's `service scale -d`) → every task shut down, and → every task deleted (s);
 *   - etcd writes (keys put or deleted) and write transactions per task, each way;
 *   - etcd's database size and the part in use, each manager's peak RSS, the simulator's RSS;
 *   - how often, since the cluster started, a manager's etcd lease lapsed and the leader marked a
 *     node down for want of a session (both should stay 0).
 *
 * Task states are read from an etcd watch on the tasks' keys (what the store holds, not what a
 * listing computes). Asserts nothing.
 *
 *   npm run bench:scale -- --nodes 1000 --tasks 100000 [--services 10] [--runs 1] [--profile DIR]
 *
 * --profile DIR: every shoald and the simulator run with node --cpu-prof, their profiles written
 * to DIR when the cluster stops.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { isTerminal, rank, type State } from '../src/common/tasks';
import { connectEtcd } from '../src/manager/etcd/client';
import { etcdTlsFiles } from '../src/manager/manager-role';
import { ROOT } from '../src/manager/store/store';
import { MAX_REPLICAS } from '../src/manager/validate';
import { TestCluster, type TestHost } from '../test/helpers/cluster';
import { printRuns } from './stats';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '50' },
    tasks: { type: 'string', default: '2000' },
    services: { type: 'string' },
    runs: { type: 'string', default: '1' },
    profile: { type: 'string' },
  },
});
const NODES = Number(values.nodes);
const TASKS = Number(values.tasks);
const SERVICES = Number(values.services ?? Math.max(5, Math.ceil(TASKS / MAX_REPLICAS)));
const RUNS = Number(values.runs);
const PHASE_TIMEOUT_MS = 30 * 60_000;
const PROGRESS_MS = 5000;
const MiB = 2 ** 20;

const TASKS_PREFIX = `${ROOT}tasks/`;

/** The state of every task, from an etcd watch: counts kept as events arrive. */
class TaskWatch {
  private readonly tasks = new Map<string, { desired: State; state: State }>();
  running = 0;
  placed = 0;
  live = 0;
  private waiters: { until: () => boolean; resolve: () => void }[] = [];
  private watcher: Watcher | undefined;

  constructor(private readonly etcd: Etcd3) {}

  get size(): number {
    return this.tasks.size;
  }

  async start(): Promise<void> {
    const revision = await this.load();
    const watcher = await this.etcd
      .watch()
      .prefix(TASKS_PREFIX)
      .startRevision(String(revision + 1))
      .create();
    watcher.on('put', (kv) => this.put(kv));
    watcher.on('delete', (kv) => this.remove(kv.key.toString().slice(TASKS_PREFIX.length)));
    watcher.on('disconnected', (err: Error) => this.watcher === watcher && console.log(`  the benchmark's task watch was cut (${err.message}); it resumes`));
    this.watcher = watcher;
  }

  async stop(): Promise<void> {
    const watcher = this.watcher;
    this.watcher = undefined;
    await watcher?.cancel().catch(() => undefined);
  }

  /**
   * Reads every task again and recounts, when the watch seems to have missed events (it was
   * seen to, once, with both cores overloaded): returns the revision read at.
   */
  async load(): Promise<number> {
    const res = await this.etcd.getAll().prefix(TASKS_PREFIX).exec();
    this.tasks.clear();
    this.running = this.placed = this.live = 0;
    for (const kv of res.kvs) this.put(kv);
    return Number(res.header.revision);
  }

  /** Resolves once `until` holds, checked after every event. */
  when(until: () => boolean): Promise<void> {
    if (until()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ until, resolve }));
  }

  private put(kv: IKeyValue): void {
    const id = kv.key.toString().slice(TASKS_PREFIX.length);
    const t = JSON.parse(kv.value.toString()) as { desired_state: State; status: { state: State } };
    this.remove(id, false);
    const entry = { desired: t.desired_state, state: t.status.state };
    this.tasks.set(id, entry);
    this.count(entry, 1);
    this.check();
  }

  private remove(id: string, check = true): void {
    const old = this.tasks.get(id);
    if (old) {
      this.tasks.delete(id);
      this.count(old, -1);
    }
    if (check) this.check();
  }

  private count(e: { desired: State; state: State }, by: number): void {
    if (e.desired === 'RUNNING' && e.state === 'RUNNING') this.running += by;
    if (rank(e.state) >= rank('ASSIGNED')) this.placed += by;
    if (!isTerminal(e.state)) this.live += by;
  }

  private check(): void {
    if (!this.waiters.length) return;
    const done = this.waiters.filter((w) => w.until());
    if (!done.length) return;
    this.waiters = this.waiters.filter((w) => !done.includes(w));
    for (const w of done) w.resolve();
  }
}

/** What each manager's processes are: shoald's pid, its etcd member's pid and client port. */
interface ManagerProcs {
  host: TestHost;
  shoald: number;
  etcd: number;
  etcdUrl: string;
}

function managerProcs(h: TestHost): ManagerProcs {
  const shoald = Number(fs.readFileSync(path.join(path.dirname(h.socket), 'shoald.pid'), 'utf8'));
  const etcd = Number(fs.readFileSync(path.join(h.dataDir, 'etcd', 'etcd.pid'), 'utf8'));
  // shoald sets its process title, so the member's own command line says where it listens.
  const url = fs.readFileSync(`/proc/${etcd}/cmdline`, 'utf8').split('\0').find((a) => a.startsWith('--advertise-client-urls='));
  if (!url) throw new Error(`cannot tell where ${h.name}'s etcd member listens`);
  return { host: h, shoald, etcd, etcdUrl: url.slice(url.indexOf('=') + 1) };
}

/** Lines of the managers' logs that carry `msg`, counted from the start of each log. */
function logged(procs: ManagerProcs[], msg: string): number {
  const needle = `"msg":"${msg}`;
  return procs.reduce((n, p) => n + fs.readFileSync(path.join(p.host.dataDir, 'shoald.log'), 'utf8').split('\n').filter((l) => l.includes(needle)).length, 0);
}

/** A field of /proc/PID/status, in MiB (VmRSS now, VmHWM the peak). */
function procMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** etcd's Prometheus metrics, as name → value (labelled series are skipped). */
function etcdMetrics(m: ManagerProcs): Promise<Map<string, number>> {
  const tls = etcdTlsFiles(path.join(m.host.dataDir, 'etcd'));
  return new Promise((resolve, reject) => {
    const req = https.get(
      `${m.etcdUrl}/metrics`,
      { ca: fs.readFileSync(tls.caFile), cert: fs.readFileSync(tls.certFile), key: fs.readFileSync(tls.keyFile), checkServerIdentity: () => undefined, servername: '' },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          const out = new Map<string, number>();
          for (const line of body.split('\n')) {
            const match = /^([a-z_]+) (\S+)$/.exec(line);
            if (match) out.set(match[1], Number(match[2]));
          }
          resolve(out);
        });
      },
    );
    req.on('error', reject);
  });
}

/** Keys written (put or deleted) and write revisions, as etcd counts them. */
async function etcdWrites(m: ManagerProcs): Promise<{ keys: number; revision: number }> {
  const x = await etcdMetrics(m);
  return { keys: (x.get('etcd_mvcc_put_total') ?? NaN) + (x.get('etcd_mvcc_delete_total') ?? NaN), revision: x.get('etcd_debugging_mvcc_current_revision') ?? NaN };
}

/** The simulated workers' process. */
class Simulator {
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private statsWaiter: ((s: { rss: number; running: number }) => void) | undefined;

  constructor(token: string, managers: string[], addr: string, profileDir?: string) {
    this.child = fork(path.join(__dirname, 'sim-workers.js'), ['--token', token, '--managers', managers.join(','), '--nodes', String(NODES), '--addr', addr], {
      execArgv: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    // A message sent as it exits fails; the exit is what is reported.
    this.child.on('error', () => undefined);
    this.child.on('message', (msg: { type: string; rss: number; running: number }) => {
      if (msg.type === 'stats') this.statsWaiter?.(msg);
    });
  }

  /** Resolves when every node has joined; rejects if the simulator fails. */
  joined(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.child.on('message', (msg: { type: string; nodes?: number; message?: string }) => {
        if (msg.type === 'joined') console.log(`  ${msg.nodes}/${NODES} simulated nodes joined`);
        if (msg.type === 'ready') resolve();
        if (msg.type === 'error') reject(new Error(`the simulated workers failed: ${msg.message}`));
      });
      this.child.once('exit', (code) => reject(new Error(`the simulated workers exited (${code})`)));
    });
  }

  stats(): Promise<{ rss: number; running: number }> {
    if (!this.child.connected) return Promise.resolve({ rss: NaN, running: NaN });
    return new Promise((resolve) => {
      this.statsWaiter = resolve;
      this.child.send({ type: 'stats' });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Prints progress every few seconds while `phase` runs. */
async function withProgress<T>(what: string, watch: TaskWatch, line: () => Promise<string>, phase: Promise<T>): Promise<T> {
  const t0 = performance.now();
  let last = '';
  let still = 0;
  const timer = setInterval(
    () =>
      void line().then(async (l) => {
        console.log(`  ${what} ${((performance.now() - t0) / 1000).toFixed(0)} s: ${l}`);
        still = l === last ? still + 1 : 0;
        last = l;
        if (still < 3) return;
        console.log('  no change for 15 s: reading every task again (the figure of this phase may be late by as much)');
        await watch.load();
      }).catch((err: Error) => console.log(`  reading the progress failed: ${err.message}`)),
    PROGRESS_MS,
  );
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not done within ${PHASE_TIMEOUT_MS / 60_000} min`)), PHASE_TIMEOUT_MS).unref());
  try {
    return await Promise.race([phase, timeout]);
  } finally {
    clearInterval(timer);
  }
}

const replicasOf = (i: number) => Math.floor(TASKS / SERVICES) + (i < TASKS % SERVICES ? 1 : 0);

async function once(cluster: TestCluster, procs: ManagerProcs[], watch: TaskWatch, sim: Simulator, run: number): Promise<Record<string, number>> {
  const names = Array.from({ length: SERVICES }, (_, i) => `scale${run}-${i}`);
  const m = cluster.managers[0];
  const progress = async () => {
    const s = await sim.stats();
    return `${watch.size} tasks, ${watch.placed} placed, ${watch.running} running in etcd, ${s.running} reported by the simulator`;
  };
  const r: Record<string, number> = {};

  const before = await etcdWrites(procs[0]);
  const t0 = performance.now();
  const placed = watch.when(() => watch.placed >= TASKS).then(() => performance.now());
  const running = watch.when(() => watch.running >= TASKS);
  await m.api(async (c) => {
    for (let i = 0; i < SERVICES; i++) {
      await c.createService({ spec: { name: names[i], mode: { replicated: { replicas: replicasOf(i) } }, task_template: { container: { image: 'shoal-test:latest', command: ['sleep', '1d'] } } } });
    }
  });
  r['create (s)'] = (performance.now() - t0) / 1000;
  await withProgress(`run ${run} up`, watch, progress, running);
  r['all running (s)'] = (performance.now() - t0) / 1000;
  r['all placed (s)'] = ((await placed) - t0) / 1000;
  r['placements/s'] = TASKS / r['all placed (s)'];
  const up = await etcdWrites(procs[0]);
  r['etcd keys written/task up'] = (up.keys - before.keys) / TASKS;
  r['etcd txns/task up'] = (up.revision - before.revision) / TASKS;

  const t1 = performance.now();
  const stopped = watch.when(() => watch.live === 0).then(() => performance.now());
  const gone = watch.when(() => watch.size === 0);
  m.ok('service', 'scale', '-d', ...names.map((n) => `${n}=0`));
  await withProgress(`run ${run} down`, watch, async () => `${watch.size} tasks, ${watch.live} not ended`, gone);
  r['scale 0 → all shut down (s)'] = ((await stopped) - t1) / 1000;
  r['scale 0 → all deleted (s)'] = (performance.now() - t1) / 1000;
  const down = await etcdWrites(procs[0]);
  r['etcd keys written/task down'] = (down.keys - up.keys) / TASKS;
  r['etcd txns/task down'] = (down.revision - up.revision) / TASKS;

  const x = await etcdMetrics(procs[0]);
  r['etcd db (MiB)'] = (x.get('etcd_mvcc_db_total_size_in_bytes') ?? NaN) / MiB;
  r['etcd db in use (MiB)'] = (x.get('etcd_mvcc_db_total_size_in_use_in_bytes') ?? NaN) / MiB;
  r['max manager peak RSS (MiB)'] = Math.max(...procs.map((p) => procMiB(p.shoald, 'VmHWM')));
  r['max etcd peak RSS (MiB)'] = Math.max(...procs.map((p) => procMiB(p.etcd, 'VmHWM')));
  r['simulator RSS (MiB)'] = (await sim.stats()).rss / MiB;
  // Since the cluster started: a lapsed lease drops a manager's sessions, and leadership may move.
  r['manager leases lost'] = logged(procs, 'manager lease lost');
  r['nodes marked down'] = logged(procs, 'node missed its heartbeats') + logged(procs, 'node has no session with any manager');
  m.ok('service', 'rm', ...names);
  return r;
}

/** A script that runs node with --cpu-prof (not allowed in NODE_OPTIONS), for cluster.sh to start shoald with. */
function profilingNode(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const wrapper = path.join(path.resolve(dir), 'node-cpu-prof');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${process.execPath} --cpu-prof --cpu-prof-dir=${path.resolve(dir)} "$@"\n`, { mode: 0o755 });
  return wrapper;
}

async function main(): Promise<void> {
  console.log(`scale: ${NODES} simulated nodes, ${TASKS} tasks in ${SERVICES} services, 3 managers`);
  const cluster = await TestCluster.create({ managers: 3, workers: 0, node: values.profile ? profilingNode(values.profile) : undefined });
  let sim: Simulator | undefined;
  let etcd: Etcd3 | undefined;
  let watch: TaskWatch | undefined;
  let cleaning: Promise<void> | undefined;
  // Once, whether a signal or the end of main() asks first; both wait for it.
  const cleanup = () =>
    (cleaning ??= (async () => {
      await sim?.stop();
      await watch?.stop();
      etcd?.close();
      await cluster.destroy();
    })());
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    console.error('interrupted: removing the cluster');
    cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const procs = cluster.managers.map(managerProcs);
    const m = cluster.managers[0];
    for (const h of cluster.managers) m.ok('node', 'update', '--availability', 'drain', h.hostname);
    const token = m.ok('join-token', '-q', 'worker').trim();
    const t0 = performance.now();
    sim = new Simulator(token, cluster.managers.map((h) => `${h.addr}:2377`), cluster.bridgeAddr, values.profile);
    await sim.joined();
    await cluster.waitFor(async () => (await cluster.nodes()).filter((n) => n.spec?.role === 'worker' && n.status?.state === 'NODE_READY').length === NODES, {
      what: `${NODES} simulated nodes ready`,
      timeoutMs: 600_000,
    });
    console.log(`${NODES} nodes joined and ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const tls = etcdTlsFiles(path.join(m.dataDir, 'etcd'));
    etcd = connectEtcd(procs.map((p) => p.etcdUrl), tls, { callTimeoutMs: 60_000 });
    watch = new TaskWatch(etcd);
    await watch.start();
    await printRuns(RUNS, ` (${NODES} nodes, ${TASKS} tasks, ${SERVICES} services)`, (run) => once(cluster, procs, watch!, sim!, run));
    console.log(`load average at the end: ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  } finally {
    await cleanup();
  }
}

// The etcd client and the agents' channels may keep the loop alive a while after they are closed.
main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
