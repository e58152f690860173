import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { invalidArgument } from '../common/errors';
import type { ArchiveFile, ArchiveFiles } from './archive';
import { normalizeTag } from './reference';

export interface LayerDescriptor {
  digest: string;
  mediaType: string;
  size: number;
  /** sha256 of the uncompressed tar: what the config lists, and what names the unpacked dir. */
  diffId: string;
}

/** One image found in an archive, every byte of it verified against its digest. */
export interface ArchiveImage {
  manifestDigest: string;
  configDigest: string;
  config: unknown;
  layers: LayerDescriptor[];
  tags: string[];
  /** `name@digest` references this image also answers to (a pulled index's digest). */
  repoDigests?: string[];
  /** digest → saved file, for the manifest, the config and every layer. */
  blobs: Map<string, ArchiveFile>;
}

const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
};
const GZIP_LAYER = /^application\/vnd\.(?:oci\.image\.layer\.(?:nondistributable\.)?v1\.tar\+gzip|docker\.image\.rootfs\.(?:foreign\.)?diff\.tar\.gzip)$/;
const PLAIN_LAYER = /^application\/vnd\.(?:oci\.image\.layer\.(?:nondistributable\.)?v1\.tar|docker\.image\.rootfs\.(?:foreign\.)?diff\.tar)$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
// Metadata is small; a huge "JSON" file is an attack or a mistake, not an image.
const MAX_JSON = 4 << 20;

export const isGzipLayer = (mediaType: string) => GZIP_LAYER.test(mediaType);

const PLATFORM_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' };
const ourArch = PLATFORM_ARCH[process.arch] ?? process.arch;

/**
 * Finds and verifies the images in an OCI image layout or a `docker save` archive.
 * Newer docker archives carry both forms; the OCI side is read there, since it keeps
 * the registry's manifest digest, and manifest.json only adds its RepoTags.
 * `dir` receives the manifests written for docker save images, which come without one.
 */
export async function readImages(files: ArchiveFiles, dir: string): Promise<ArchiveImage[]> {
  for (const [name, file] of files) {
    const m = /^blobs\/sha256\/(.*)$/.exec(name);
    if (m && file.digest !== `sha256:${m[1]}`) throw invalidArgument(`blob sha256:${m[1]} does not match its digest`);
  }
  const images = files.has('index.json')
    ? await readOciLayout(files)
    : files.has('manifest.json')
      ? await readDockerSave(files, dir)
      : null;
  if (images === null) {
    throw invalidArgument('not an image archive: it has neither index.json (OCI image layout) nor manifest.json (docker save)');
  }
  if (images.length === 0) throw invalidArgument(`image archive holds no image for linux/${ourArch}`);
  return images;
}

async function readOciLayout(files: ArchiveFiles): Promise<ArchiveImage[]> {
  const index = await readJson<OciIndex>(member(files, 'index.json'), 'index.json');
  const repoTags = files.has('manifest.json') ? await dockerRepoTags(files) : new Map<string, string[]>();
  const images: ArchiveImage[] = [];
  for (const desc of list(index.manifests, 'index.json manifests')) {
    const manifestDesc = await pickManifest(files, desc);
    if (!manifestDesc) continue;
    const manifestFile = blob(files, manifestDesc);
    const manifest = await readJson<OciManifest>(manifestFile, `manifest ${manifestDesc.digest}`);
    if (!manifest.config || typeof manifest.config !== 'object') {
      throw invalidArgument(`manifest ${manifestDesc.digest} has no config`);
    }
    const configFile = blob(files, manifest.config);
    const config = await readJson<ImageConfigJson>(configFile, `config ${manifest.config.digest}`);
    const diffIds = diffIdsOf(config, manifest.config.digest);
    const layerDescs = list(manifest.layers, `manifest ${manifestDesc.digest} layers`);
    if (layerDescs.length !== diffIds.length) {
      throw invalidArgument(`manifest ${manifestDesc.digest} lists ${layerDescs.length} layers but its config has ${diffIds.length}`);
    }
    const blobs = new Map([[manifestDesc.digest, manifestFile], [manifest.config.digest, configFile]]);
    const layers: LayerDescriptor[] = [];
    for (const [i, l] of layerDescs.entries()) {
      const file = blob(files, l);
      await checkDiffId(file, l.digest, l.mediaType, diffIds[i]);
      blobs.set(l.digest, file);
      layers.push({ digest: l.digest, mediaType: l.mediaType, size: file.size, diffId: diffIds[i] });
    }
    const annotations = desc.annotations ?? {};
    // containerd and docker put the full name here; the OCI key often holds only a tag.
    const named = annotations['io.containerd.image.name'] ?? annotations['org.opencontainers.image.ref.name'];
    const tags = [...(named ? [named] : []), ...(repoTags.get(manifest.config.digest) ?? [])];
    images.push({
      manifestDigest: manifestDesc.digest,
      configDigest: manifest.config.digest,
      config,
      layers,
      tags: normalizeTags(tags),
      blobs,
    });
  }
  return images;
}

/** An index entry may itself be an index (multi-platform); take the entry for this machine. */
async function pickManifest(files: ArchiveFiles, desc: Descriptor, depth = 0): Promise<Descriptor | undefined> {
  if (desc.mediaType !== MEDIA.ociIndex && desc.mediaType !== MEDIA.dockerList) return desc;
  if (depth > 4) throw invalidArgument(`image index ${desc.digest} nests too deeply`);
  const index = await readJson<OciIndex>(blob(files, desc), `index ${desc.digest}`);
  const entries = list(index.manifests, `index ${desc.digest} manifests`);
  const ours = entries.find((e) => e.platform?.os === 'linux' && e.platform.architecture === ourArch);
  const only = entries.length === 1 && !entries[0].platform ? entries[0] : undefined;
  const chosen = ours ?? only;
  return chosen && pickManifest(files, chosen, depth + 1);
}

async function readDockerSave(files: ArchiveFiles, dir: string): Promise<ArchiveImage[]> {
  const images: ArchiveImage[] = [];
  for (const entry of await dockerManifest(files)) {
    const configFile = member(files, entry.Config);
    // The config's file name is its digest: `<hex>.json`, or `blobs/sha256/<hex>` in newer archives.
    const hex = /([a-f0-9]{64})(?:\.json)?$/.exec(entry.Config ?? '')?.[1];
    if (!hex) throw invalidArgument(`docker save config "${entry.Config}" is not named by its digest`);
    const configDigest = `sha256:${hex}`;
    if (configFile.digest !== configDigest) throw invalidArgument(`config ${configDigest} does not match its digest`);
    const config = await readJson<ImageConfigJson>(configFile, `config ${configDigest}`);
    const diffIds = diffIdsOf(config, configDigest);
    const layerPaths = list(entry.Layers, 'manifest.json Layers');
    if (layerPaths.length !== diffIds.length) {
      throw invalidArgument(`manifest.json lists ${layerPaths.length} layers for ${configDigest} but its config has ${diffIds.length}`);
    }
    const blobs = new Map([[configDigest, configFile]]);
    const layers = layerPaths.map((path, i): LayerDescriptor => {
      const file = member(files, path);
      if (file.digest !== diffIds[i]) throw invalidArgument(`layer ${path} does not match its diff id ${diffIds[i]}`);
      blobs.set(file.digest, file);
      return { digest: file.digest, mediaType: MEDIA.ociLayer, size: file.size, diffId: diffIds[i] };
    });
    // docker save carries no manifest; write the OCI one it stands for, so every image has a digest.
    const manifestBytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.ociManifest,
        config: { mediaType: MEDIA.ociConfig, digest: configDigest, size: configFile.size },
        layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      }),
    );
    const manifestDigest = `sha256:${createHash('sha256').update(manifestBytes).digest('hex')}`;
    const manifestPath = join(dir, `manifest-${manifestDigest.slice(7)}`);
    await writeFile(manifestPath, manifestBytes, { mode: 0o600, flush: true });
    blobs.set(manifestDigest, { path: manifestPath, digest: manifestDigest, size: manifestBytes.length });
    images.push({
      manifestDigest,
      configDigest,
      config,
      layers,
      tags: normalizeTags(entry.RepoTags ?? []),
      blobs,
    });
  }
  return images;
}

async function dockerManifest(files: ArchiveFiles): Promise<DockerManifestEntry[]> {
  return list(await readJson<DockerManifestEntry[]>(member(files, 'manifest.json'), 'manifest.json'), 'manifest.json');
}

async function dockerRepoTags(files: ArchiveFiles): Promise<Map<string, string[]>> {
  const tags = new Map<string, string[]>();
  for (const entry of await dockerManifest(files)) {
    const hex = /([a-f0-9]{64})(?:\.json)?$/.exec(entry.Config ?? '')?.[1];
    if (hex) tags.set(`sha256:${hex}`, [...(tags.get(`sha256:${hex}`) ?? []), ...(entry.RepoTags ?? [])]);
  }
  return tags;
}

export async function checkDiffId(file: ArchiveFile, digest: string, mediaType: string, diffId: string): Promise<void> {
  if (PLAIN_LAYER.test(mediaType)) {
    if (digest !== diffId) throw invalidArgument(`layer ${digest} does not match its diff id ${diffId}`);
  } else if (GZIP_LAYER.test(mediaType)) {
    const hash = createHash('sha256');
    try {
      await pipeline(createReadStream(file.path), createGunzip(), hash);
    } catch {
      throw invalidArgument(`layer ${digest} is not valid gzip`);
    }
    if (`sha256:${hash.digest('hex')}` !== diffId) {
      throw invalidArgument(`layer ${digest} does not match its diff id ${diffId} once uncompressed`);
    }
  } else {
    throw invalidArgument(`layer ${digest} has media type "${mediaType}"; only tar and tar+gzip layers are supported`);
  }
}

function blob(files: ArchiveFiles, desc: Descriptor): ArchiveFile {
  if (typeof desc?.digest !== 'string' || !DIGEST.test(desc.digest)) {
    throw invalidArgument(`descriptor digest ${JSON.stringify(desc?.digest)} is not a sha256 digest`);
  }
  const file = member(files, `blobs/sha256/${desc.digest.slice(7)}`);
  if (desc.size !== undefined && desc.size !== file.size) {
    throw invalidArgument(`blob ${desc.digest} is ${file.size} bytes, but its descriptor says ${desc.size}`);
  }
  return file;
}

function member(files: ArchiveFiles, name: unknown): ArchiveFile {
  const file = typeof name === 'string' ? files.get(name.replace(/^\.\//, '')) : undefined;
  if (!file) throw invalidArgument(`image archive is incomplete (truncated?): it lacks ${String(name)}`);
  return file;
}

export function diffIdsOf(config: ImageConfigJson, digest: string): string[] {
  const ids = list(config.rootfs?.diff_ids, `config ${digest} rootfs.diff_ids`);
  for (const id of ids) {
    if (typeof id !== 'string' || !DIGEST.test(id)) throw invalidArgument(`config ${digest} has an invalid diff id ${JSON.stringify(id)}`);
  }
  return ids;
}

function normalizeTags(tags: string[]): string[] {
  return [...new Set(tags.map((t) => normalizeTag(t)))];
}

function list<T>(value: T[] | undefined, what: string): T[] {
  if (!Array.isArray(value)) throw invalidArgument(`${what} is not a list`);
  return value;
}

async function readJson<T>(file: ArchiveFile, what: string): Promise<T> {
  if (file.size > MAX_JSON) throw invalidArgument(`${what} is ${file.size} bytes; metadata over ${MAX_JSON} bytes is refused`);
  try {
    const value = JSON.parse(await readFile(file.path, 'utf8'));
    if (value === null || typeof value !== 'object') throw new Error('not an object');
    return value as T;
  } catch {
    throw invalidArgument(`${what} is not valid JSON`);
  }
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size?: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string };
}
interface OciIndex {
  manifests?: Descriptor[];
}
interface OciManifest {
  config?: Descriptor;
  layers?: Descriptor[];
}
export interface ImageConfigJson {
  created?: string;
  config?: {
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[];
    WorkingDir?: string;
    User?: string;
    StopSignal?: string;
    Labels?: Record<string, string>;
    /** Durations in nanoseconds, as Docker writes them. */
    Healthcheck?: { Test?: string[] | null; Interval?: number; Timeout?: number; StartPeriod?: number; Retries?: number } | null;
  };
  rootfs?: { diff_ids?: string[] };
}
interface DockerManifestEntry {
  Config?: string;
  RepoTags?: string[] | null;
  Layers?: string[];
}
