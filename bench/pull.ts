/**
 * Pull benchmark on one node: time from `service create` of N replicas of an image that is not on
 * the node yet (~50 MiB in 5 layers, pushed to a local docker-registry) to all replicas running.
 * A counting proxy in front of the registry checks that every blob was downloaded exactly once
 * per run, whatever the replica count. Prints per-run figures and medians.
 *
 *   npm run bench:pull                           # 50 replicas, 3 runs
 *   node dist/bench/pull.js --replicas 50 --runs 5 --layer-mib 12
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '../src/cli/client';
import { blankSpec } from '../src/cli/commands/service-flags';
import { parseReference } from '../src/worker/images/reference';
import { RegistryClient } from '../src/worker/images/registry/client';
import { LoopbackHttpServer } from '../test/helpers/http-server';
import { buildTestImage, TestNode } from '../test/helpers/test-node';
import { TestRegistry } from '../test/registry/registry';

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

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const fileDigest = (file: string) => {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 20);
  for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  fs.closeSync(fd);
  return `sha256:${h.digest('hex')}`;
};

/** Deterministic incompressible bytes: SHA-256 in counter mode over a seed. */
function seededBytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let off = 0, i = 0; off < size; off += 32, i++) createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off);
  return out;
}

/**
 * An OCI layout: the busybox test image's layer (for `sh`) and `dataLayers` layers of seeded random
 * data, uncompressed. Returns the layout dir and the digests of its config and layers.
 */
function buildImage(work: string): { layout: string; blobs: string[]; bytes: number } {
  const base = path.join(work, 'base');
  fs.mkdirSync(base, { recursive: true });
  execFileSync('tar', ['-C', base, '-xf', buildTestImage(work)]);
  const blobDir = path.join(base, 'blobs', 'sha256');
  const blob = (d: string) => path.join(blobDir, d.slice(7));
  const index = JSON.parse(fs.readFileSync(path.join(base, 'index.json'), 'utf8'));
  const manifest = JSON.parse(fs.readFileSync(blob(index.manifests[0].digest), 'utf8'));
  const config = JSON.parse(fs.readFileSync(blob(manifest.config.digest), 'utf8'));
  for (let i = 0; i < dataLayers; i++) {
    const dir = path.join(work, `layer-${i}`);
    fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'data', `blob-${i}`), seededBytes(`${values.seed}:${i}`, layerBytes));
    const tar = path.join(work, `layer-${i}.tar`);
    execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', dir, '-cf', tar, '.']);
    const digest = fileDigest(tar);
    fs.renameSync(tar, blob(digest));
    fs.rmSync(dir, { recursive: true, force: true });
    manifest.layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: fs.statSync(blob(digest)).size });
    config.rootfs.diff_ids.push(digest);
  }
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = sha256(configBytes);
  fs.writeFileSync(blob(configDigest), configBytes);
  manifest.config = { ...manifest.config, digest: configDigest, size: configBytes.length };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = sha256(manifestBytes);
  fs.writeFileSync(blob(manifestDigest), manifestBytes);
  index.manifests = [
    { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifestBytes.length, annotations: { 'org.opencontainers.image.ref.name': 'bench' } },
  ];
  fs.writeFileSync(path.join(base, 'index.json'), JSON.stringify(index));
  const layers = manifest.layers as { digest: string; size: number }[];
  return { layout: base, blobs: [configDigest, ...layers.map((l) => l.digest)], bytes: layers.reduce((n, l) => n + l.size, 0) };
}

/** A plain-HTTP proxy in front of the registry that counts blob GETs by digest. */
class CountingProxy extends LoopbackHttpServer {
  readonly blobGets = new Map<string, number>();

  constructor(private readonly upstreamPort: number) {
    super();
  }

  protected handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const m = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '');
    if (m && req.method === 'GET') this.blobGets.set(m[1], (this.blobGets.get(m[1]) ?? 0) + 1);
    const up = http.request({ host: '127.0.0.1', port: this.upstreamPort, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  }
}

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
  let proxy: CountingProxy | undefined;
  let client: Client | undefined;
  try {
    const work = path.join(node.dir, 'bench-image');
    const image = buildImage(work);
    await registry.start();
    execFileSync('skopeo', ['copy', '--insecure-policy', '--dest-tls-verify=false', '--quiet', `oci:${image.layout}:bench`, `docker://${registry.host}/${REPO}:1`]);
    fs.rmSync(work, { recursive: true, force: true });
    // skopeo compresses the layers on the way, so the blobs to count are the registry's.
    const pushed = await new RegistryClient({ insecureRegistries: [registry.host] }).resolve(parseReference(`${registry.host}/${REPO}:1`));
    image.blobs = [pushed.config.digest, ...pushed.layers.map((l) => l.digest)];
    image.bytes = pushed.layers.reduce((n, l) => n + l.size, 0);
    proxy = new CountingProxy(registry.port);
    await proxy.start();
    const host = `127.0.0.1:${proxy.port}`;
    node.daemonArgs = [`--insecure-registry=${host}`];
    await node.start();
    node.ok('init');
    client = new Client(node.socket);
    process.stdout.write(`image: ${image.blobs.length - 1} layers, ${(image.bytes / (1 << 20)).toFixed(1)} MiB; ${replicas} replicas; ${runs} runs\n`);

    const times: number[] = [];
    const pulls: number[] = [];
    for (let i = 0; i < runs; i++) {
      proxy.blobGets.clear();
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
      const counts = image.blobs.map((d) => proxy!.blobGets.get(d) ?? 0);
      const once = counts.every((c) => c === 1) && proxy.blobGets.size === image.blobs.length;
      process.stdout.write(
        `run ${i + 1}: all ${replicas} running after ${(times[i] / 1000).toFixed(2)} s (pull ${(pulls[i] / 1000).toFixed(2)} s); blob GETs ${counts.join('/')} (config/layers): ${once ? 'each blob once' : 'NOT once each'}\n`,
      );
      if (!once) throw new Error(`blobs were not downloaded exactly once: ${JSON.stringify([...proxy.blobGets])}`);

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
    await proxy?.close();
    await registry.destroy();
    await node.destroy();
  }
}

main().catch((err) => {
  process.stderr.write(`benchmark failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
