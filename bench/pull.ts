/**
 * Pull benchmark on one node: time from `service create` of N replicas of an image that is not on
 * the node yet (~50 MiB in 5 layers, pushed to a local docker-registry) to all replicas running.
 * The registry's access log shows that every blob was downloaded exactly once per run, whatever
 * the replica count. Prints per-run figures and medians.
 *
 *   npm run bench:pull                           # 50 replicas, 3 runs
 *   node dist/bench/pull.js --replicas 50 --runs 5 --layer-mib 12
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '../src/cli/client';
import { blankSpec } from '../src/cli/commands/service-flags';
import { parseReference } from '../src/images/reference';
import { RegistryClient } from '../src/images/registry/client';
import { buildDerivedImage } from '../test/helpers/derived-image';
import { TestNode } from '../test/helpers/test-node';
import { TestRegistry } from '../test/registry/registry';
import { median } from './stats';

const WORKLOAD = ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1 & wait $!; done'];
const POLL_MS = 20;
const REPO = 'bench/big';

const { values } = parseArgs({
  options: {
    replicas: { type: 'string', default: '50' },
    runs: { type: 'string', default: '3' },
    layers: { type: 'string', default: '4' },
    'layer-mib': { type: 'string', default: '12' },
    seed: { type: 'string', default: '42' },
  },
});
const replicas = Number(values.replicas);
const runs = Number(values.runs);
const dataLayers = Number(values.layers);
const layerBytes = Number(values['layer-mib']) << 20;

async function until(check: () => Promise<boolean>, timeoutMs = 300_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return performance.now();
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function main(): Promise<void> {
  const node = new TestNode();
  const registry = new TestRegistry();
  let client: Client | undefined;
  try {
    const work = path.join(node.dir, 'bench-image');
    const image = buildDerivedImage(work, { layers: dataLayers, layerBytes, seed: values.seed!, refName: 'bench' });
    await registry.start();
    execFileSync('skopeo', ['copy', '--insecure-policy', '--dest-tls-verify=false', '--quiet', `oci:${image.layout}:bench`, `docker://${registry.host}/${REPO}:1`]);
    fs.rmSync(work, { recursive: true, force: true });
    // skopeo compresses the layers on the way, so the blobs to count are the registry's.
    const pushed = await new RegistryClient({ insecureRegistries: [registry.host] }).resolve(parseReference(`${registry.host}/${REPO}:1`));
    image.blobs = [pushed.config.digest, ...pushed.layers.map((l) => l.digest)];
    image.bytes = pushed.layers.reduce((n, l) => n + l.size, 0);
    const host = registry.host;
    node.daemonArgs = [`--insecure-registry=${host}`];
    await node.start();
    node.ok('init');
    client = new Client(node.socket);
    process.stdout.write(`image: ${image.blobs.length - 1} layers, ${(image.bytes / (1 << 20)).toFixed(1)} MiB; ${replicas} replicas; ${runs} runs\n`);

    const times: number[] = [];
    const pulls: number[] = [];
    for (let i = 0; i < runs; i++) {
      const before = registry.blobGets();
      const logBefore = fs.statSync(path.join(node.dir, 'shoald.log')).size;
      const spec = blankSpec();
      spec.name = `pull-${i}`;
      spec.mode = { mode: 'replicated', replicated: { replicas } };
      spec.task_template!.container!.image = `${host}/${REPO}:1`;
      spec.task_template!.container!.args = WORKLOAD;
      const t0 = performance.now();
      const { service: svc } = await client.createService({ spec });
      const t1 = await until(async () => {
        const { tasks } = await client!.listTasks({ service: svc.id });
        const failed = tasks.find((t) => t.status!.err);
        if (failed) throw new Error(`a task failed: ${failed.status!.err}`);
        return tasks.filter((t) => t.status!.state === 'RUNNING').length === replicas;
      });
      times.push(t1 - t0);
      const log = fs.readFileSync(path.join(node.dir, 'shoald.log'), 'utf8').slice(logBefore);
      const pulled = log.split('\n').filter((l) => l.includes('"pulled image"')).map((l) => JSON.parse(l).ms as number);
      pulls.push(pulled[0] ?? NaN);
      const gets = registry.blobGets(before);
      const counts = image.blobs.map((d) => gets.get(d) ?? 0);
      const once = counts.every((c) => c === 1) && gets.size === image.blobs.length;
      process.stdout.write(
        `run ${i + 1}: all ${replicas} running after ${(times[i] / 1000).toFixed(2)} s (pull ${(pulls[i] / 1000).toFixed(2)} s); blob GETs ${counts.join('/')} (config/layers): ${once ? 'each blob once' : 'NOT once each'}\n`,
      );
      if (!once) throw new Error(`blobs were not downloaded exactly once: ${JSON.stringify([...gets])}`);

      // Back to a node without the image.
      await client.removeService(svc.id);
      await until(async () => (await client!.listTasks({})).tasks.length === 0);
      await until(async () => {
        try {
          await client!.pruneImages(true);
        } catch {
          return false;
        }
        return (await client!.listImages()).images.length === 0;
      });
    }
    process.stdout.write(
      `\nreplicas   runs   create→all running (median)   of which pull (median)\n${String(replicas).padEnd(11)}${String(runs).padEnd(7)}${`${(median(times) / 1000).toFixed(2)} s`.padEnd(30)}${(median(pulls) / 1000).toFixed(2)} s\n`,
    );
  } finally {
    client?.close();
    await registry.destroy();
    await node.destroy();
  }
}

main().catch((err) => {
  process.stderr.write(`benchmark failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
