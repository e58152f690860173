import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTestImage } from './test-node';

export interface DerivedImage {
  /** The OCI layout directory (push it with skopeo as `oci:<layout>:<refName>`). */
  layout: string;
  /** Digests of the config, then of every layer, lowest first. */
  blobs: string[];
  /** Bytes of all layers. */
  bytes: number;
}

export interface DerivedImageOptions {
  /** Extra layers on top of the busybox base, each of `layerBytes` seeded random bytes. */
  layers: number;
  layerBytes: number;
  seed: string;
  /** The layout's `org.opencontainers.image.ref.name`. */
  refName: string;
  /** Fields set in the image config's `config` (Entrypoint, Cmd, Env, StopSignal, …). */
  config?: Record<string, unknown>;
  /** The test image tar to build on, if one was built already (building it takes a while). */
  base?: string;
}

/** Deterministic incompressible bytes: SHA-256 in counter mode over a seed. */
function seededBytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let off = 0, i = 0; off < size; off += 32, i++) createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off);
  return out;
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function fileDigest(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 20);
  for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  fs.closeSync(fd);
  return `sha256:${h.digest('hex')}`;
}

/**
 * An OCI layout built on the busybox test image: its layer (so `sh` works, and so that layer is
 * shared with the test image) plus `layers` uncompressed layers of seeded random data.
 */
export function buildDerivedImage(work: string, opts: DerivedImageOptions): DerivedImage {
  const base = path.join(work, `derived-${opts.refName}`);
  fs.mkdirSync(base, { recursive: true });
  execFileSync('tar', ['-C', base, '-xf', opts.base ?? buildTestImage(work)]);
  const blobDir = path.join(base, 'blobs', 'sha256');
  const blob = (d: string) => path.join(blobDir, d.slice(7));
  const index = JSON.parse(fs.readFileSync(path.join(base, 'index.json'), 'utf8'));
  const manifest = JSON.parse(fs.readFileSync(blob(index.manifests[0].digest), 'utf8'));
  const config = JSON.parse(fs.readFileSync(blob(manifest.config.digest), 'utf8'));
  for (let i = 0; i < opts.layers; i++) {
    const dir = path.join(work, `layer-${opts.refName}-${i}`);
    fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'data', `blob-${i}`), seededBytes(`${opts.seed}:${i}`, opts.layerBytes));
    const tar = `${dir}.tar`;
    execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', dir, '-cf', tar, '.']);
    const digest = fileDigest(tar);
    fs.renameSync(tar, blob(digest));
    fs.rmSync(dir, { recursive: true, force: true });
    manifest.layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: fs.statSync(blob(digest)).size });
    config.rootfs.diff_ids.push(digest);
  }
  Object.assign(config.config, opts.config);
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = sha256(configBytes);
  fs.writeFileSync(blob(configDigest), configBytes);
  manifest.config = { ...manifest.config, digest: configDigest, size: configBytes.length };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = sha256(manifestBytes);
  fs.writeFileSync(blob(manifestDigest), manifestBytes);
  index.manifests = [
    {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: manifestDigest,
      size: manifestBytes.length,
      annotations: { 'org.opencontainers.image.ref.name': opts.refName },
    },
  ];
  fs.writeFileSync(path.join(base, 'index.json'), JSON.stringify(index));
  const layers = manifest.layers as { digest: string; size: number }[];
  return { layout: base, blobs: [configDigest, ...layers.map((l) => l.digest)], bytes: layers.reduce((n, l) => n + l.size, 0) };
}
