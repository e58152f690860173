/**
 * Container stop benchmark through the Runtime API (runc under conmon; needs root): how long
 * Runtime.stop takes for a busybox shell that exits on SIGTERM, and for one that ignores SIGTERM
 * and is killed when its grace period ends. The tests check what a stop does (the trap's exit
 * code, or 137 after the kill), never how long it took; this prints it.
 *
 *   node dist/bench/stop.js                   # 10 runs of each, a grace period of 300 ms
 *   node dist/bench/stop.js --runs 10 --grace-ms 300
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { config, newId, setUpRuntime, tearDownRuntime, testMarker, type RuntimeSetup } from '../test/helpers/runtime';
import { waitFor } from '../test/helpers/wait';
import { median } from './stats';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    'grace-ms': { type: 'string', default: '300' },
  },
});
const runs = Number(values.runs);
const graceMs = Number(values['grace-ms']);

const KINDS = {
  'exits on SIGTERM': { trap: 'trap "exit 3" TERM', exitCode: 3 },
  'ignores SIGTERM': { trap: 'trap "" TERM', exitCode: 137 },
};

/** Starts a shell that sets `trap`, waits until it says it is ready, and times its stop. */
async function stopOnce(s: RuntimeSetup, trap: string, exitCode: number): Promise<number> {
  const c = config(newId(), s.layer, s.logs, { args: ['sh', '-c', `${trap}; echo ready; while true; do sleep 0.1; done`] });
  await s.rt.create(c);
  await s.rt.start(c.id);
  // the trap is set once the shell has printed this
  await waitFor(() => / stdout F ready$/m.test(readFileSync(c.logPath, 'utf8')), { what: `container ${c.id} to be ready`, timeoutMs: 30_000 });
  const t0 = performance.now();
  await s.rt.stop(c.id, 'SIGTERM', graceMs);
  const ms = performance.now() - t0;
  const st = await s.rt.state(c.id);
  if (st?.exitCode !== exitCode) throw new Error(`container ${c.id} ended with ${st?.exitCode}, not ${exitCode}`);
  await s.rt.remove(c.id);
  return ms;
}

async function main(): Promise<void> {
  const marker = testMarker();
  const setup = setUpRuntime(marker);
  const times = new Map<string, number[]>();
  process.stdout.write(`${runs} runs of each, grace period ${graceMs} ms\n`);
  try {
    for (let i = 0; i < runs; i++) {
      for (const [kind, { trap, exitCode }] of Object.entries(KINDS)) {
        const ms = await stopOnce(setup, trap, exitCode);
        times.set(kind, [...(times.get(kind) ?? []), ms]);
        process.stdout.write(`run ${i + 1}, ${kind}: ${Math.round(ms)} ms\n`);
      }
    }
  } finally {
    const left = await tearDownRuntime(marker, setup);
    if (left.length) throw new Error(`left behind:\n${left.join('\n')}`);
  }
  process.stdout.write('\ncontainer          grace period   stop (median)   stop (max)\n');
  for (const [kind, ms] of times) {
    process.stdout.write(`${kind.padEnd(19)}${`${graceMs} ms`.padEnd(15)}${`${Math.round(median(ms))} ms`.padEnd(16)}${Math.round(Math.max(...ms))} ms\n`);
  }
}

main().catch((err) => {
  process.stderr.write(`benchmark failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
