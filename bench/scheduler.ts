/**
 * Scheduler benchmark on plain data (no etcd, no I/O): places mixed services — reservations,
 * constraints, a platform, spread preferences, max replicas per node — onto a simulated
 * cluster, and prints placements per CPU-second (the wall time too: on a shared machine it
 * includes waiting for a core) and how even each service's spread came out.
 *
 *   npm run bench:scheduler                                           # 100,000 tasks, 1,000 nodes, 3 runs
 *   node dist/bench/scheduler.js --tasks 100000 --nodes 1000 --services 500 --runs 3
 */
import { parseArgs } from 'node:util';
import type { Node__Output } from '../src/gen/shoal/v1/Node';
import type { Task__Output } from '../src/gen/shoal/v1/Task';
import { schedule } from '../src/scheduler/schedule';

const { values } = parseArgs({
  options: {
    tasks: { type: 'string', default: '100000' },
    nodes: { type: 'string', default: '1000' },
    services: { type: 'string', default: '500' },
    runs: { type: 'string', default: '3' },
  },
});
const TASKS = Number(values.tasks);
const NODES = Number(values.nodes);
const SERVICES = Number(values.services);
const RUNS = Number(values.runs);
const GiB = 2 ** 30;
const MiB = 2 ** 20;

// A fixed-seed generator, so every run and every machine schedules the same cluster.
let seed = 42;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)];

function makeNodes(): Node__Output[] {
  return Array.from({ length: NODES }, (_, i) => ({
    id: `node-${String(i).padStart(5, '0')}`,
    version: 1,
    spec: {
      role: i < 5 ? 'manager' : 'worker',
      availability: random() < 0.02 ? 'drain' : 'active',
      labels: { zone: `z${i % 5}`, rack: `r${i % 17}` },
    },
    description: {
      hostname: `host-${i}`,
      platform: { os: 'linux', architecture: random() < 0.1 ? 'arm64' : 'x86_64' },
      resources: { nano_cpus: pick([8, 16, 32, 64]) * 1e9, memory_bytes: pick([32, 64, 128]) * GiB, pids: 0 },
      engine_version: '',
    },
    status: { state: random() < 0.02 ? 'NODE_DOWN' : 'NODE_READY', message: '', addr: '', heartbeat_at: '' },
    manager_status: null,
    created_at: '',
  }));
}

function makeTasks(): Task__Output[] {
  const perService = Math.ceil(TASKS / SERVICES);
  const tasks: Task__Output[] = [];
  for (let s = 0; s < SERVICES && tasks.length < TASKS; s++) {
    const spec: Task__Output['spec'] = {
      container: null,
      resources: {
        limits: { nano_cpus: s % 9 === 0 ? 4e9 : 0, memory_bytes: 0, pids: 0 },
        reservations: { nano_cpus: s % 3 === 0 ? pick([1e8, 2.5e8]) : 0, memory_bytes: s % 2 === 0 ? pick([64, 128, 256]) * MiB : 0, pids: 0 },
      },
      restart_policy: null,
      networks: [],
      placement: {
        constraints: [...(s % 5 === 0 ? ['node.labels.zone!=z0'] : []), ...(s % 11 === 0 ? ['node.role!=manager'] : [])],
        max_replicas: s % 10 === 0 ? 1 : s % 10 === 1 ? 2 : 0,
        preferences: s % 4 === 0 ? [{ spread: 'node.labels.zone' }, ...(s % 8 === 0 ? [{ spread: 'node.labels.rack' }] : [])] : [],
        platforms: s % 7 === 0 ? [{ os: 'linux', architecture: 'amd64' }] : [],
      },
    };
    for (let slot = 1; slot <= perService && tasks.length < TASKS; slot++) {
      tasks.push({
        id: `s${s}-${slot}`,
        version: 1,
        service_id: `svc-${s}`,
        service_name: `svc-${s}`,
        slot,
        node_id: '',
        spec_version: 1,
        spec,
        desired_state: 'RUNNING',
        status: { state: 'PENDING', timestamp: '', message: '', err: '', container: null, health: '' },
        created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString(),
        start_after: '',
        schedule_error: '',
        restart_times: [],
        endpoint: null,
      });
    }
  }
  return tasks;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function main(): void {
  const nodes = makeNodes();
  const pending = makeTasks();
  const rates: number[] = [];
  let last: ReturnType<typeof schedule> | undefined;
  for (let run = 1; run <= RUNS; run++) {
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    last = schedule(nodes, [], pending);
    const ms = performance.now() - start;
    const cpu = process.cpuUsage(cpuStart);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    // On a shared machine the wall time includes waiting for a core; the CPU time does not.
    const rate = last.placements.length / (cpuMs / 1000);
    rates.push(rate);
    console.log(
      `run ${run}: ${last.placements.length} placed, ${last.unplaced.length} unplaced in ${ms.toFixed(0)} ms wall, ${cpuMs.toFixed(0)} ms cpu: ${Math.round(rate)} placements per cpu-second`,
    );
  }

  // How far each service without preferences is from even over the nodes it used.
  const spreadOver = new Set(pending.filter((t) => t.spec!.placement!.preferences.length).map((t) => t.service_id));
  const perNode = new Map<string, Map<string, number>>();
  for (const p of last!.placements) {
    const service = `svc-${p.taskId.slice(1, p.taskId.indexOf('-'))}`;
    if (spreadOver.has(service)) continue;
    const counts = perNode.get(service) ?? new Map<string, number>();
    counts.set(p.nodeId, (counts.get(p.nodeId) ?? 0) + 1);
    perNode.set(service, counts);
  }
  let worst = 0;
  for (const counts of perNode.values()) worst = Math.max(worst, Math.max(...counts.values()) - Math.min(...counts.values()));
  const reasons = new Map<string, number>();
  for (const u of last!.unplaced) reasons.set(u.reason, (reasons.get(u.reason) ?? 0) + 1);
  console.log(`${pending.length} tasks of ${SERVICES} services on ${NODES} nodes: median ${Math.round(median(rates))} placements per cpu-second`);
  console.log(`largest gap between the busiest and idlest used node of a service without preferences: ${worst}`);
  for (const [reason, n] of reasons) console.log(`unplaced ×${n}: ${reason}`);
}

main();
