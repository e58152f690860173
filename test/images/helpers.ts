import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readdirSync, lstatSync, writeFileSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { ImageStore } from '../../src/images/store';

export const SCRIPT = join(__dirname, '../../deploy/build-test-image.sh');

export function buildTestImage(out: string, format: 'oci' | 'docker', tag = 'shoal-test:latest'): string {
  execFileSync(SCRIPT, ['--format', format, '--tag', tag, out], { stdio: 'pipe' });
  return out;
}

export const load = (store: ImageStore, tarPath: string) => store.load(createReadStream(tarPath));

export const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Every path under `root` with its type and size: what "the store is unchanged" compares. */
export function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const st = lstatSync(path);
      out.push(`${relative(root, path)} ${st.isDirectory() ? 'dir' : st.size}`);
      if (st.isDirectory()) walk(path);
    }
  };
  walk(root);
  return out;
}

/** Writes `files` (path → content; a trailing '/' makes a directory) into `dir` and tars it with GNU tar. */
export function tarOf(dir: string, files: Record<string, string>): Buffer {
  mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    if (name.endsWith('/')) mkdirSync(join(dir, name), { recursive: true });
    else {
      mkdirSync(join(dir, name, '..'), { recursive: true });
      writeFileSync(join(dir, name), content);
    }
  }
  return execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', dir, '-cf', '-', '.'], {
    maxBuffer: 1 << 30,
  });
}

export interface TestLayer {
  tar: Buffer;
  gzip?: boolean;
}

/**
 * Writes an OCI image layout holding one image made of `layers` and tars it to `out`.
 * `dockerRepoTags` adds the manifest.json that newer `docker save` writes beside the layout.
 */
export function ociArchive(
  work: string,
  out: string,
  layers: TestLayer[],
  opts: { tag?: string; dockerRepoTags?: string[]; diffIds?: string[] } = {},
): { id: string; manifestDigest: string } {
  const layout = join(work, 'layout');
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer) => {
    const d = sha256(b);
    writeFileSync(join(blobs, d.slice(7)), b);
    return d;
  };
  const descs = layers.map((l) => {
    const blob = l.gzip ? gzipSync(l.tar) : l.tar;
    return {
      mediaType: `application/vnd.oci.image.layer.v1.tar${l.gzip ? '+gzip' : ''}`,
      digest: put(blob),
      size: blob.length,
    };
  });
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2024-01-02T03:04:05Z',
      config: { Env: ['A=1'], Cmd: ['sh'], Labels: { l: 'v' }, StopSignal: 'SIGQUIT' },
      rootfs: { type: 'layers', diff_ids: opts.diffIds ?? layers.map((l) => sha256(l.tar)) },
    }),
  );
  const id = put(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: id, size: config.length },
      layers: descs,
    }),
  );
  const manifestDigest = put(manifest);
  const annotations = opts.tag ? { 'org.opencontainers.image.ref.name': opts.tag } : undefined;
  writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifest.length, annotations }],
    }),
  );
  if (opts.dockerRepoTags) {
    writeFileSync(
      join(layout, 'manifest.json'),
      JSON.stringify([{ Config: `blobs/sha256/${id.slice(7)}`, RepoTags: opts.dockerRepoTags, Layers: descs.map((d) => `blobs/sha256/${d.digest.slice(7)}`) }]),
    );
  }
  execFileSync('tar', ['-C', layout, '-cf', out, '.']);
  return { id, manifestDigest };
}

/** Unpacks an archive to a dir, lets `edit` change it, and tars it again. */
export function rewriteArchive(src: string, work: string, out: string, edit: (dir: string) => void): void {
  const dir = join(work, 'rewrite');
  mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['-C', dir, '-xf', src]);
  edit(dir);
  execFileSync('tar', ['-C', dir, '-cf', out, '.']);
}

export function flipByte(path: string, at: number): void {
  const b = readFileSync(path);
  b[at] ^= 0xff;
  writeFileSync(path, b);
}
