/**
 * Convergence benchmark on one node: time from `service create` of N replicas to all running,
 * and from scale-to-0 to every container gone. Prints per-run figures and medians.
 *
 *   npm run bench                 # N = 10 and 50, 5 runs each
 *   node dist/bench/convergence.js --replicas 50 --runs 3
 */
import { parseArgs } from 'node:util';
import { Client } from '../src/cli/client';
import { blankSpec } from '../src/cli/commands/service-flags';
import { buildTestImage, TestNode } from '../test/helpers/test-node';

// Exits on SIGTERM at once (`wait` is interrupted by the trapped signal), as the issue asks.
const WORKLOAD = ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1 & wait $!; done'];
const POLL_MS = 20;

const { values } = parseArgs({
  options: { replicas: { type: 'string', multiple: true }, runs: { type: 'string', default: '5' } },
});
const sizes = (values.replicas ?? ['10', '50']).map(Number);
const runs = Number(values.runs);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function until(check: () => Promise<boolean>): Promise<number> {
  for (;;) {
    if (await check()) return performance.now();
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function main(): Promise<void> {
  const node = new TestNode();
  try {
    await node.start();
    node.ok('init');
    node.ok('image', 'load', buildTestImage(node.dir));
    const client = new Client(node.socket);
    const containers = () => node.containerIds().length;
    const results: { n: number; up: number[]; down: number[] }[] = [];
    for (const n of sizes) {
      const r = { n, up: [] as number[], down: [] as number[] };
      for (let i = 0; i < runs; i++) {
        const spec = blankSpec();
        spec.name = `bench-${n}-${i}`;
        spec.mode = { mode: 'replicated', replicated: { replicas: n } };
        spec.task_template!.container!.image = 'shoal-test:latest';
        spec.task_template!.container!.args = WORKLOAD;
        const t0 = performance.now();
        const { service: svc } = await client.createService({ spec });
        const t1 = await until(async () => {
          const { tasks } = await client.listTasks({ service: svc.id });
          return tasks.filter((t) => t.status!.state === 'RUNNING').length === n;
        });
        const current = await client.getService(svc.id);
        const t2 = performance.now();
        await client.updateService({ service: svc.id, version: current.version, spec: { ...current.spec!, mode: { replicated: { replicas: 0 } } } });
        const t3 = await until(async () => {
          const { tasks } = await client.listTasks({ service: svc.id });
          return tasks.every((t) => t.status!.state === 'SHUTDOWN') && containers() === 0;
        });
        r.up.push(t1 - t0);
        r.down.push(t3 - t2);
        process.stdout.write(`N=${n} run ${i + 1}: running after ${(t1 - t0).toFixed(0)} ms, gone after ${(t3 - t2).toFixed(0)} ms\n`);
        await client.removeService(svc.id);
        await until(async () => (await client.listTasks({})).tasks.length === 0);
      }
      results.push(r);
    }
    client.close();
    process.stdout.write('\nreplicas   runs   create→all running (median)   scale 0→all gone (median)\n');
    for (const r of results) {
      process.stdout.write(
        `${String(r.n).padEnd(11)}${String(runs).padEnd(7)}${`${(median(r.up) / 1000).toFixed(2)} s`.padEnd(30)}${(median(r.down) / 1000).toFixed(2)} s\n`,
      );
    }
  } finally {
    await node.destroy();
  }
}

main().catch((err) => {
  process.stderr.write(`benchmark failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
