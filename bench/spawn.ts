/**
 * Container start benchmark through the Runtime API (runc under conmon, forked from the process
 * spawner; needs root): N busybox containers created+started with concurrency 4, several runs.
 * Prints per-run figures and the medians of the wall time, of this process's CPU time
 * (user+system, children not included) and of the spawner's. This process is first padded to
 * --rss-mb of resident memory, like a running shoald, since fork() cost grows with the parent's RSS.
 *
 *   npm run bench:spawn                       # 50 containers, concurrency 4, 5 runs, 150 MB of RSS
 *   node dist/bench/spawn.js --containers 50 --runs 5 --rss-mb 150
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { config, newId, setUpRuntime, tearDownRuntime, type RuntimeSetup } from '../test/helpers/runtime';

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

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

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

async function main(): Promise<void> {
  const marker = `shoal-bench-${Math.random().toString(36).slice(2, 8)}`;
  const setup = setUpRuntime(marker);
  const ballast: Buffer[] = [];
  while (process.memoryUsage().rss < rssMb * 1024 * 1024) ballast.push(Buffer.alloc(8 * 1024 * 1024, 1));
  const rss = Math.round(process.memoryUsage().rss / 1024 / 1024);
  process.stdout.write(`${N} containers, concurrency ${CONCURRENCY}, ${runs} runs, RSS ${rss} MB\n`);
  const rows: { ms: number; cpuMs: number; spawnerMs: number }[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const r = await round(setup);
      rows.push(r);
      process.stdout.write(`run ${i + 1}: ${Math.round(r.ms)} ms wall, ${Math.round(r.cpuMs)} ms CPU of this process, ${Math.round(r.spawnerMs)} ms of the spawner\n`);
    }
  } finally {
    const left = await tearDownRuntime(marker, setup);
    if (left.length) throw new Error(`left behind:\n${left.join('\n')}`);
  }
  const m = (k: keyof (typeof rows)[number]) => `${Math.round(median(rows.map((r) => r[k])))} ms`;
  process.stdout.write(
    `\ncontainers   concurrency   wall (median)   CPU of this process (median)   CPU of the spawner (median)\n` +
      `${String(N).padEnd(13)}${String(CONCURRENCY).padEnd(14)}${m('ms').padEnd(16)}${m('cpuMs').padEnd(31)}${m('spawnerMs')}\n`,
  );
  void ballast;
}

main().catch((err) => {
  process.stderr.write(`benchmark failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
