import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quietLogger } from '../../src/common/logger';
import { Runtime, type RuntimeOptions } from '../../src/worker/runtime/runtime';
import { config, leftovers, makeBusyboxLayer, newId } from './helpers';

/**
 * Not a test: a benchmark, run only with SHOAL_BENCH=1:
 *   SHOAL_BENCH=1 npx vitest run test/runtime/spawn-bench.test.ts
 * 50 containers created+started through the Runtime API with concurrency 4, 5 rounds; prints the
 * median wall time and this process's CPU time (user+system; children not included). This process
 * is padded to SHOAL_BENCH_RSS_MB (default 150) of resident memory like a running shoald, since
 * fork() cost grows with the parent's RSS.
 */
const N = 50;
const CONCURRENCY = 4;
const ROUNDS = 5;

describe.runIf(process.env.SHOAL_BENCH)('spawn benchmark', () => {
  const marker = `shoal-bench-${Math.random().toString(36).slice(2, 8)}`;
  let base: string;
  let layer: string;
  let opts: RuntimeOptions;
  let rt: Runtime;
  const ballast: Buffer[] = [];

  beforeAll(() => {
    base = mkdtempSync(path.join(os.tmpdir(), `${marker}-`));
    layer = makeBusyboxLayer(path.join(base, 'layer'));
    opts = { root: path.join(base, 'root'), runcRoot: path.join(base, 'runc'), cgroupParent: marker, log: quietLogger() };
    rt = new Runtime(opts);
    const target = Number(process.env.SHOAL_BENCH_RSS_MB ?? 150) * 1024 * 1024;
    while (process.memoryUsage().rss < target) ballast.push(Buffer.alloc(8 * 1024 * 1024, 1));
  });

  afterAll(async () => {
    await rt.removeAll();
    rt.close();
    const left = leftovers(marker, opts.runcRoot);
    rmSync(base, { recursive: true, force: true });
    expect(left).toEqual([]);
  });

  it(`creates and starts ${N} containers with concurrency ${CONCURRENCY}`, async () => {
    const rows: { ms: number; cpuMs: number }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const queue = Array.from({ length: N }, () => config(newId(), layer, path.join(base, 'logs')));
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
      rows.push({ ms, cpuMs: (cpu.user + cpu.system) / 1000 });
      expect((await rt.list()).filter((s) => s.status === 'running')).toHaveLength(N);
      await rt.removeAll();
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const rss = Math.round(process.memoryUsage().rss / 1024 / 1024);
    console.log(
      `${N} containers, concurrency ${CONCURRENCY}, RSS ${rss} MB: median ${Math.round(med(rows.map((r) => r.ms)))} ms wall, ` +
        `${Math.round(med(rows.map((r) => r.cpuMs)))} ms CPU of this process ` +
        `(rounds: ${rows.map((r) => `${Math.round(r.ms)}/${Math.round(r.cpuMs)}`).join(', ')})`,
    );
  });
});
