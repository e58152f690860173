/**
 * Container start benchmark through the Runtime API (runc under conmon, forked from the process
 * spawner; needs root): N busybox containers created+started with concurrency 4, several runs.
 * Prints per-run figures and the medians of the wall time, of this process's CPU time
 * (user+system, children not included) and of the spawner's; then the create+start time of one
 * container alone, and the spawner's resident memory (the reason it exists is to be small). This
 * process is first padded to --rss-mb of resident memory, like a running shoald, since fork() cost
 * grows with the parent's RSS.
 *
 *   npm run bench:spawn                       # 50 containers, concurrency 4, 5 runs, 150 MB of RSS
 *   node dist/bench/spawn.js --containers 50 --runs 5 --rss-mb 150
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { config, newId, setUpRuntime, tearDownRuntime, testMarker, type RuntimeSetup } from '../test/helpers/runtime';
import { median } from './stats';

const { values } = parseArgs({
  options: {
    containers: { type: 'string', default: '50' },
    runs: { type: 'string', default: '5' },
    'rss-mb': { type: 'string', default: '150' },
  },
});
const N = Number(values.containers);
const CONCURRENCY = 4;
const runs = Number(values.runs);
const rssMb = Number(values['rss-mb']);

/** utime+stime of a process in ms (0 once it is gone). */
function cpuOf(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

async function round(s: RuntimeSetup): Promise<{ ms: number; cpuMs: number; spawnerMs: number }> {
  const { rt } = s;
  const queue = Array.from({ length: N }, () => config(newId(), s.layer, s.logs));
  const spawner0 = cpuOf(rt.spawnerPid);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        await rt.create(c);
        await rt.start(c.id);
      }
    }),
  );
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const spawnerMs = cpuOf(rt.spawnerPid) - spawner0;
  const running = (await rt.list()).filter((st) => st.status === 'running').length;
  if (running !== N) throw new Error(`${running} of ${N} containers running`);
  await rt.removeAll();
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000, spawnerMs };
}

/** create+start of one container at a time, `n` times: the latency of a single start. */
async function singles(s: RuntimeSetup, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = config(newId(), s.layer, s.logs);
    const t0 = performance.now();
    await s.rt.create(c);
    await s.rt.start(c.id);
    out.push(performance.now() - t0);
  }
  await s.rt.removeAll();
  return out;
}

/** Resident memory of a process in MiB, from /proc/<pid>/status. */
function rssMibOf(pid: number | undefined): number {
  const kb = pid ? /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8')) : null;
  if (!kb) throw new Error(`no resident memory figure for process ${pid}`);
  return Number(kb[1]) / 1024;
}

async function main(): Promise<void> {
  const marker = testMarker();
  const setup = setUpRuntime(marker);
  const ballast: Buffer[] = [];
  while (process.memoryUsage().rss < rssMb * 1024 * 1024) ballast.push(Buffer.alloc(8 * 1024 * 1024, 1));
  const rss = Math.round(process.memoryUsage().rss / 1024 / 1024);
  process.stdout.write(`${N} containers, concurrency ${CONCURRENCY}, ${runs} runs, RSS ${rss} MB\n`);
  const rows: { ms: number; cpuMs: number; spawnerMs: number }[] = [];
  let one: number[];
  let spawnerRss: number;
  try {
    for (let i = 0; i < runs; i++) {
      const r = await round(setup);
      rows.push(r);
      process.stdout.write(`run ${i + 1}: ${Math.round(r.ms)} ms wall, ${Math.round(r.cpuMs)} ms CPU of this process, ${Math.round(r.spawnerMs)} ms of the spawner\n`);
    }
    one = await singles(setup, 5);
    spawnerRss = rssMibOf(setup.rt.spawnerPid);
  } finally {
    const left = await tearDownRuntime(marker, setup);
    if (left.length) throw new Error(`left behind:\n${left.join('\n')}`);
  }
  const m = (k: keyof (typeof rows)[number]) => `${Math.round(median(rows.map((r) => r[k])))} ms`;
  process.stdout.write(
    `\ncontainers   concurrency   wall (median)   CPU of this process (median)   CPU of the spawner (median)\n` +
      `${String(N).padEnd(13)}${String(CONCURRENCY).padEnd(14)}${m('ms').padEnd(16)}${m('cpuMs').padEnd(31)}${m('spawnerMs')}\n`,
  );
  process.stdout.write(`\ncreate+start of one container alone: median ${Math.round(median(one))} ms (${one.map(Math.round).join(', ')})\n`);
  process.stdout.write(`resident memory of the spawner after ${runs * N + one.length} containers: ${spawnerRss.toFixed(1)} MiB (this process: ${rss} MB)\n`);
  void ballast;
}

main().catch((err) => {
  process.stderr.write(`benchmark failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
