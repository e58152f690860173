import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { status } from '@grpc/grpc-js';
import { failedPrecondition, invalidArgument, notFound, ShoalError } from '../common/errors';
import { formatBytes, formatDuration } from '../common/units';
import { quietLogger, type Logger } from '../common/logger';
import { readArchive } from './archive';
import { readCatalog, writeCatalog, type Catalog, type CatalogImage, type CatalogLayer } from './catalog';
import { unpackLayer } from './layers';
import { checkDiffId, diffIdsOf, isGzipLayer, readImages, type ArchiveImage, type ImageConfigJson } from './layout';
import { parseReference, type ImageReference } from './reference';
import type { Descriptor, RegistryClient } from './registry/client';
import type { HealthConfig__Output } from '../gen/shoal/v1/HealthConfig';

export interface ImageConfig {
  env: string[];
  entrypoint: string[];
  cmd: string[];
  workingDir: string;
  user: string;
  /** '' when the image sets none. */
  stopSignal: string;
  labels: Record<string, string>;
  /** The image's HEALTHCHECK (durations in ms); absent when it has none. */
  healthcheck?: HealthConfig__Output;
}

export interface ImageRecord {
  /** sha256:<config digest> */
  id: string;
  /** sha256:<manifest digest> */
  digest: string;
  tags: string[];
  /** Bytes of the stored config and layer blobs (layers as shipped, compressed or not). */
  sizeBytes: number;
  createdAt: string;
}

export interface PulledImage extends ImageRecord {
  /** `name@digest` of what the reference resolved to at the registry. */
  repoDigest: string;
}

export interface ResolvedImage extends ImageRecord {
  config: ImageConfig;
  /** Absolute paths of the unpacked layer dirs, lowest first (overlayfs lowerdir wants the reverse). */
  layers: string[];
}

const ID_PREFIX = /^(?:sha256:)?([a-f0-9]{1,64})$/;

export interface PruneResult {
  deleted: ImageRecord[];
  /** Bytes of blobs and unpacked layers removed from disk. */
  reclaimedBytes: number;
}

/**
 * An image loaded or pulled is not collected automatically until a container has used it or this
 * long has passed (the default of --image-gc-min-age): it is there to be run, and a disk over the
 * mark must not take it first.
 */
export const GC_MIN_AGE_MS = 5 * 60_000;

export interface CollectResult extends PruneResult {
  /** Why the store is still over the policy's high mark after collecting (nothing more could go); null when it is not. */
  stillOver: string | null;
  /** Unused images left alone because they were loaded or pulled less than the minimum age ago. */
  keptYoung: number;
}

/** When automatic collection starts; it then deletes unused images, least recently used first. */
export interface GcPolicy {
  /** Collect when the store's blobs and unpacked layers take more than this; down to 90% of it. */
  maxBytes?: number;
  /** Collect when the filesystem holding the store is fuller than this; down to 5 points below. */
  highPercent?: number;
  /** Images loaded or pulled less than this long ago and not used since are not collected (default GC_MIN_AGE_MS). */
  minAgeMs?: number;
}

/**
 * The node-local image store:
 *   <root>/blobs/sha256/<hex>   manifests, configs and layer tars, named by their digest
 *   <root>/layers/<diff id hex> each layer unpacked once, shared by every image that has it
 *   <root>/images.json          image id → manifest digest, tags, layers (see catalog.ts)
 *   <root>/tmp/                 loads and unpacks in progress; renamed into place when complete
 */
export class ImageStore {
  private readonly log: Logger;
  private catalog: Catalog = { images: {} };
  private opened?: Promise<void>;
  /** Serializes catalog changes; loads stream and verify outside it, and only commit inside. */
  private lock: Promise<unknown> = Promise.resolve();
  private readonly unpacking = new Map<string, Promise<string>>();
  /** Pulls in flight by reference, and blob downloads by digest: each happens once per node. */
  private readonly pulls = new Map<string, Promise<PulledImage>>();
  private readonly downloads = new Map<string, Promise<void>>();
  /** Blob hexes a pull in flight relies on; garbage collection leaves them alone. */
  private readonly pinned = new Map<string, number>();
  /** Image id → when last used (ms); written into the catalog with its next save. */
  private readonly lastUsed = new Map<string, number>();
  /** Images loaded or pulled and not used since, with when: collection leaves them alone for the policy's minimum age (in memory only). */
  private readonly fresh = new Map<string, number>();
  /** Bytes of each unpacked layer dir, by diff id hex, measured once. */
  private readonly layerBytes = new Map<string, number>();
  /** Called after images are added (loaded or pulled): the daemon checks its collection marks. */
  onCommit?: () => void;

  constructor(
    /** The store's directory, on the node's data disk. */
    readonly root: string,
    log?: Logger,
  ) {
    this.log = log ?? quietLogger();
  }

  async load(input: NodeJS.ReadableStream | Readable): Promise<ImageRecord[]> {
    await this.open();
    const tmp = await mkdtemp(join(this.root, 'tmp', 'load-'));
    try {
      const images = await readImages(await readArchive(input, tmp), tmp);
      return await this.exclusive(() => this.commit(images));
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  /**
   * Pulls `ref` (a tag or a digest) from its registry into the store. Concurrent pulls of one
   * reference share one pull, and of one blob one download. Each blob is verified against its
   * digest in a temp file and only then renamed into blobs/, so an interrupted pull leaves
   * nothing that later passes as complete; the image is committed like a loaded one.
   */
  async pull(ref: string, registry: RegistryClient): Promise<PulledImage> {
    await this.open();
    const parsed = parseReference(ref);
    // Pulls through different clients (other credentials) do not share: one may be refused where the other is not.
    const key = `${parsed.registry}/${parsed.repository}${parsed.digest ? `@${parsed.digest}` : `:${parsed.tag}`}|${clientId(registry)}`;
    let pending = this.pulls.get(key);
    if (!pending) {
      pending = this.pullOnce(parsed, registry).finally(() => this.pulls.delete(key));
      this.pulls.set(key, pending);
    }
    return pending;
  }

  async list(): Promise<ImageRecord[]> {
    await this.open();
    return Object.entries(this.catalog.images)
      .map(([id, image]) => record(id, image))
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || a.id.localeCompare(b.id));
  }

  /** null when the image is not here; the layers are unpacked before this returns. */
  async resolve(ref: string): Promise<ResolvedImage | null> {
    await this.open();
    const found = this.lookup(ref);
    if (!found) return null;
    const { id, image } = found;
    this.lastUsed.set(id, Date.now());
    this.fresh.delete(id);
    const config = JSON.parse(await readFile(this.blobPath(id), 'utf8')) as ImageConfigJson;
    const layers = await Promise.all(image.layers.map((l) => this.layerDir(l)));
    return { ...record(id, image), config: imageConfig(config), layers };
  }

  /**
   * By tag: drops that tag, and deletes the image once no tag is left. By id or digest:
   * drops every tag and deletes it. Deleting refuses while `inUse(id)`, changing nothing.
   */
  async remove(ref: string, inUse: (imageId: string) => boolean): Promise<{ untagged: string[]; deleted: string[] }> {
    await this.open();
    return this.exclusive(async () => {
      const found = this.lookup(ref);
      if (!found) throw notFound(`no such image: ${ref}`);
      const { id, image, tag } = found;
      const catalog = structuredClone(this.catalog);
      if (tag && image.tags.length > 1) {
        catalog.images[id].tags = image.tags.filter((t) => t !== tag);
        await this.save(catalog);
        return { untagged: [tag], deleted: [] };
      }
      if (inUse(id)) {
        throw failedPrecondition(`image ${ref} (${id.slice(7, 19)}) is in use by a container; remove its containers first`);
      }
      delete catalog.images[id];
      await this.save(catalog);
      const { layers } = await this.collectGarbage();
      this.log.info({ id, layers: layers.length }, 'deleted image');
      return { untagged: image.tags, deleted: [id, ...layers] };
    });
  }

  /**
   * Deletes images no container uses (`keep(id)` is true for those, and for images tasks here
   * are about to start): without `all`, only dangling ones (no tag left), as `docker image prune`.
   */
  async prune(all: boolean, keep: (imageId: string) => boolean): Promise<PruneResult> {
    await this.open();
    return this.exclusive(() =>
      this.deleteImages(Object.keys(this.catalog.images).filter((id) => (all || !this.catalog.images[id].tags.length) && !keep(id))),
    );
  }

  /** The ids of the images `refs` name here (unknown ones are skipped). */
  async idsOf(refs: Iterable<string>): Promise<Set<string>> {
    await this.open();
    const ids = new Set<string>();
    for (const ref of refs) {
      try {
        const found = this.lookup(ref);
        if (found) ids.add(found.id);
      } catch {
        // Not a reference this store can name.
      }
    }
    return ids;
  }

  /** Bytes on disk of blobs and unpacked layers. */
  async diskUsage(): Promise<number> {
    await this.open();
    let total = 0;
    for (const hex of await readdir(join(this.root, 'blobs', 'sha256'))) total += await lstat(join(this.root, 'blobs', 'sha256', hex)).then((s) => s.size, () => 0);
    for (const hex of await readdir(join(this.root, 'layers'))) total += await this.layerSize(hex);
    return total;
  }

  /**
   * Automatic collection: when the store is over `policy`, deletes unused images (`keep` is false),
   * least recently used first, until it is under the low mark or nothing more may go. Images
   * loaded or pulled less than the policy's minimum age before `now` and not used since stay.
   */
  async collect(policy: GcPolicy, keep: (imageId: string) => boolean, now = Date.now()): Promise<CollectResult> {
    await this.open();
    return this.exclusive(async () => {
      const result: CollectResult = { deleted: [], reclaimedBytes: 0, stillOver: null, keptYoung: 0 };
      const minAgeMs = policy.minAgeMs ?? GC_MIN_AGE_MS;
      if (!(await this.over(policy, false))) return result;
      const unused = Object.keys(this.catalog.images).filter((id) => !keep(id) && !this.pinned.has(id.slice(7)));
      const candidates = unused.filter((id) => !this.inGrace(id, now, minAgeMs)).sort((a, b) => this.lastUse(a) - this.lastUse(b));
      result.keptYoung = unused.length - candidates.length;
      for (const id of candidates) {
        const r = await this.deleteImages([id]);
        result.deleted.push(...r.deleted);
        result.reclaimedBytes += r.reclaimedBytes;
        if (!(await this.over(policy, true))) break;
      }
      if (result.deleted.length) {
        this.log.info({ images: result.deleted.map((i) => i.id), reclaimedBytes: result.reclaimedBytes }, 'image store over its limit: deleted least recently used images');
      }
      result.stillOver = await this.over(policy, false);
      return result;
    });
  }

  /**
   * After a load or pull of `ids`: if the store is over `policy` even once every other unused
   * image is gone, these would be the next to go, so they go now (those `keep` says are wanted
   * stay) and the caller is told the disk is too full, rather than told of a success that
   * collection undoes.
   */
  async admit(ids: string[], policy: GcPolicy, keep: (imageId: string) => boolean): Promise<void> {
    const { stillOver, keptYoung } = await this.collect(policy, (id) => keep(id) || ids.includes(id));
    if (!stillOver) return;
    const doomed = ids.filter((id) => !keep(id));
    if (!doomed.length) return;
    await this.exclusive(() => this.deleteImages(doomed.filter((id) => this.catalog.images[id])));
    const young = keptYoung
      ? ` but the ${keptYoung} loaded or pulled in the last ${formatDuration(policy.minAgeMs ?? GC_MIN_AGE_MS)} and not yet run (--image-gc-min-age)`
      : '';
    throw new ShoalError(status.RESOURCE_EXHAUSTED, `the disk is too full to keep the image: ${stillOver} even with every unused image deleted${young}; free space or raise the limit`);
  }

  private inGrace(id: string, now: number, minAgeMs: number): boolean {
    const since = this.fresh.get(id);
    return since !== undefined && now - since < minAgeMs;
  }

  /** Why the store is over the policy's high mark (or, with `low`, its low mark); null when it is not. */
  private async over(policy: GcPolicy, low: boolean): Promise<string | null> {
    if (policy.maxBytes !== undefined) {
      const used = await this.diskUsage();
      if (used > policy.maxBytes * (low ? 0.9 : 1)) return `the image store takes ${formatBytes(used)}, over --image-gc-max-size ${formatBytes(policy.maxBytes)}`;
    }
    if (policy.highPercent !== undefined) {
      const fs = await statfs(this.root);
      const used = fs.blocks ? (100 * (fs.blocks - fs.bfree)) / fs.blocks : 0;
      if (used > policy.highPercent - (low ? 5 : 0)) return `the disk holding ${this.root} is ${Math.round(used)}% full, over --image-gc-high-percent ${policy.highPercent}`;
    }
    return null;
  }

  private lastUse(id: string): number {
    const image = this.catalog.images[id];
    return this.lastUsed.get(id) ?? (Date.parse(image?.lastUsedAt ?? image?.createdAt ?? '') || 0);
  }

  /** Deletes images from the catalog, then whatever blobs and layers only they had. Call exclusively. */
  private async deleteImages(ids: string[]): Promise<PruneResult> {
    if (!ids.length) return { deleted: [], reclaimedBytes: 0 };
    const catalog = structuredClone(this.catalog);
    const deleted = ids.map((id) => record(id, catalog.images[id]));
    for (const id of ids) delete catalog.images[id];
    await this.save(catalog);
    for (const id of ids) {
      this.lastUsed.delete(id);
      this.fresh.delete(id);
    }
    const { bytes } = await this.collectGarbage();
    this.log.info({ images: ids, reclaimedBytes: bytes }, 'pruned images');
    return { deleted, reclaimedBytes: bytes };
  }

  private async commit(images: ArchiveImage[]): Promise<ImageRecord[]> {
    const catalog = structuredClone(this.catalog);
    for (const image of images) {
      for (const [digest, file] of image.blobs) {
        const dest = this.blobPath(digest);
        // Blobs are immutable and content-addressed: one already here is the same bytes.
        if (!(await exists(dest))) await rename(file.path, dest);
      }
      const id = image.configDigest;
      const old = catalog.images[id];
      const tags = new Set(old?.tags ?? []);
      for (const tag of image.tags) {
        for (const other of Object.values(catalog.images)) other.tags = other.tags.filter((t) => t !== tag);
        tags.add(tag);
      }
      this.lastUsed.set(id, Date.now());
      this.fresh.set(id, Date.now());
      catalog.images[id] = {
        digest: image.manifestDigest,
        tags: [...tags].sort(),
        sizeBytes: [...image.blobs].filter(([d]) => d !== image.manifestDigest).reduce((n, [, f]) => n + f.size, 0),
        createdAt: createdAt(image.config as ImageConfigJson),
        layers: image.layers.map(({ digest, mediaType, diffId }) => ({ digest, mediaType, diffId })),
      };
      const repoDigests = new Set([...(old?.repoDigests ?? []), ...(image.repoDigests ?? [])]);
      if (repoDigests.size) catalog.images[id].repoDigests = [...repoDigests].sort();
    }
    await this.save(catalog);
    // Reloading an id under another manifest (say, recompressed) orphans the old blobs.
    await this.collectGarbage();
    const ids = new Set(images.map((i) => i.configDigest));
    this.log.info({ images: [...ids] }, 'loaded images');
    // After this commit's lock is released, so a collection runs after, never inside, it.
    if (this.onCommit) setImmediate(this.onCommit);
    return [...ids].map((id) => record(id, this.catalog.images[id]));
  }

  private async pullOnce(ref: ImageReference, registry: RegistryClient): Promise<PulledImage> {
    const started = Date.now();
    const resolved = await registry.resolve(ref);
    const { manifest, config, layers } = resolved;
    const hexes = [manifest.digest, config.digest, ...layers.map((l) => l.digest)].map((d) => d.slice(7));
    for (const h of hexes) this.pinned.set(h, (this.pinned.get(h) ?? 0) + 1);
    const tmp = await mkdtemp(join(this.root, 'tmp', 'pull-'));
    try {
      await Promise.all([config, ...layers].map((d) => this.download(registry, ref, d)));
      const file = (d: Descriptor) => ({ path: this.blobPath(d.digest), digest: d.digest, size: d.size });
      let configJson: ImageConfigJson;
      try {
        configJson = JSON.parse(await readFile(this.blobPath(config.digest), 'utf8')) as ImageConfigJson;
      } catch {
        throw invalidArgument(`config ${config.digest} of ${ref.name} is not valid JSON`);
      }
      const diffIds = diffIdsOf(configJson, config.digest);
      if (diffIds.length !== layers.length) {
        throw invalidArgument(`manifest ${manifest.digest} of ${ref.name} lists ${layers.length} layers but its config has ${diffIds.length}`);
      }
      for (const [i, l] of layers.entries()) await checkDiffId(file(l), l.digest, l.mediaType, diffIds[i]);
      const manifestPath = join(tmp, 'manifest');
      await writeFile(manifestPath, manifest.bytes, { mode: 0o600, flush: true });
      const blobs = new Map([[manifest.digest, { path: manifestPath, digest: manifest.digest, size: manifest.bytes.length }]]);
      for (const d of [config, ...layers]) blobs.set(d.digest, file(d));
      const image: ArchiveImage = {
        manifestDigest: manifest.digest,
        configDigest: config.digest,
        config: configJson,
        layers: layers.map((l, i) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size, diffId: diffIds[i] })),
        tags: ref.tag && !ref.digest ? [`${ref.name}:${ref.tag}`] : [],
        repoDigests: [`${ref.name}@${resolved.digest}`],
        blobs,
      };
      const [record] = await this.exclusive(() => this.commit([image]));
      this.log.info({ ref: `${ref.name}@${resolved.digest}`, id: record.id, ms: Date.now() - started }, 'pulled image');
      return { ...record, repoDigest: `${ref.name}@${resolved.digest}` };
    } finally {
      await rm(tmp, { recursive: true, force: true });
      for (const h of hexes) {
        const n = (this.pinned.get(h) ?? 1) - 1;
        if (n > 0) this.pinned.set(h, n);
        else this.pinned.delete(h);
      }
    }
  }

  /** Downloads a blob unless it is here; verified in tmp/, then renamed into blobs/. */
  private download(registry: RegistryClient, ref: ImageReference, desc: Descriptor): Promise<void> {
    let pending = this.downloads.get(desc.digest);
    if (!pending) {
      pending = (async () => {
        const dest = this.blobPath(desc.digest);
        if (await exists(dest)) return;
        const part = join(this.root, 'tmp', `blob-${desc.digest.slice(7, 19)}-${randomBytes(4).toString('hex')}`);
        const started = Date.now();
        await registry.fetchBlob(ref, desc, part);
        await rename(part, dest);
        this.log.debug({ digest: desc.digest, size: desc.size, ms: Date.now() - started }, 'downloaded blob');
      })().finally(() => this.downloads.delete(desc.digest));
      this.downloads.set(desc.digest, pending);
    }
    return pending;
  }

  private lookup(ref: string): { id: string; image: CatalogImage; tag?: string } | null {
    const images = this.catalog.images;
    let parseError: unknown;
    try {
      const parsed = parseReference(ref);
      if (parsed.digest) {
        const named = `${parsed.name}@${parsed.digest}`;
        const id = Object.keys(images).find(
          (i) => i === parsed.digest || images[i].digest === parsed.digest || images[i].repoDigests?.includes(named),
        );
        return id ? { id, image: images[id] } : null;
      }
      const tag = `${parsed.name}:${parsed.tag}`;
      const id = Object.keys(images).find((i) => images[i].tags.includes(tag));
      if (id) return { id, image: images[id], tag };
    } catch (err) {
      parseError = err;
    }
    // Like docker, a name that is no tag here may still be an image id or a prefix of one.
    const hex = ID_PREFIX.exec(ref)?.[1];
    if (hex === undefined) {
      if (parseError) throw parseError;
      return null;
    }
    const ids = Object.keys(images).filter((id) => id.startsWith(`sha256:${hex}`));
    if (ids.length > 1) throw invalidArgument(`image id prefix ${ref} is ambiguous: it matches ${ids.length} images`);
    return ids.length ? { id: ids[0], image: images[ids[0]] } : null;
  }

  /** Unpacks a layer on first use; concurrent callers share the one unpack. */
  private layerDir(layer: CatalogLayer): Promise<string> {
    const hex = layer.diffId.slice(7);
    let pending = this.unpacking.get(hex);
    if (!pending) {
      pending = this.unpackOnce(layer, join(this.root, 'layers', hex)).finally(() => this.unpacking.delete(hex));
      this.unpacking.set(hex, pending);
    }
    return pending;
  }

  private async unpackOnce(layer: CatalogLayer, dest: string): Promise<string> {
    if (await exists(dest)) return dest;
    const started = Date.now();
    // Unpacked aside and renamed: a crash mid-unpack leaves only a temp dir, never a partial layer.
    const tmp = await mkdtemp(join(this.root, 'tmp', 'layer-'));
    try {
      await chmod(tmp, 0o755);
      await unpackLayer(this.blobPath(layer.digest), isGzipLayer(layer.mediaType), tmp, layer.diffId);
      await rename(tmp, dest);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
    this.log.info({ diffId: layer.diffId, ms: Date.now() - started }, 'unpacked layer');
    return dest;
  }

  /** Deletes blobs and unpacked layers no image references; returns the deleted layers' diff ids and the bytes freed. */
  private async collectGarbage(): Promise<{ layers: string[]; bytes: number }> {
    let bytes = 0;
    const blobs = new Set<string>();
    const diffIds = new Set<string>();
    for (const [id, image] of Object.entries(this.catalog.images)) {
      blobs.add(id.slice(7)).add(image.digest.slice(7));
      for (const l of image.layers) {
        blobs.add(l.digest.slice(7));
        diffIds.add(l.diffId.slice(7));
      }
    }
    for (const hex of await readdir(join(this.root, 'blobs', 'sha256'))) {
      if (blobs.has(hex) || this.pinned.has(hex)) continue;
      const file = join(this.root, 'blobs', 'sha256', hex);
      bytes += await lstat(file).then((s) => s.size, () => 0);
      await rm(file, { force: true });
    }
    const deleted: string[] = [];
    for (const hex of await readdir(join(this.root, 'layers'))) {
      if (diffIds.has(hex) || this.unpacking.has(hex)) continue;
      bytes += await this.layerSize(hex);
      await rm(join(this.root, 'layers', hex), { recursive: true, force: true });
      this.layerBytes.delete(hex);
      deleted.push(`sha256:${hex}`);
    }
    return { layers: deleted, bytes };
  }

  /** Bytes in an unpacked layer's files, measured once (layers never change). */
  private async layerSize(hex: string): Promise<number> {
    let n = this.layerBytes.get(hex);
    if (n === undefined) {
      n = await treeBytes(join(this.root, 'layers', hex));
      this.layerBytes.set(hex, n);
    }
    return n;
  }

  private async save(catalog: Catalog): Promise<void> {
    for (const [id, ms] of this.lastUsed) if (catalog.images[id]) catalog.images[id].lastUsedAt = new Date(ms).toISOString();
    await writeCatalog(this.root, catalog);
    this.catalog = catalog;
  }

  private blobPath(digest: string): string {
    return join(this.root, 'blobs', 'sha256', digest.slice(7));
  }

  private open(): Promise<void> {
    this.opened ??= (async () => {
      // Whatever is in tmp was left by a crash: nothing there is referenced.
      await rm(join(this.root, 'tmp'), { recursive: true, force: true });
      for (const dir of ['blobs/sha256', 'layers', 'tmp']) await mkdir(join(this.root, dir), { recursive: true, mode: 0o700 });
      this.catalog = await readCatalog(this.root);
    })();
    return this.opened;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.catch(() => undefined);
    return run;
  }
}

const clientIds = new WeakMap<RegistryClient, number>();
let nextClientId = 0;
function clientId(c: RegistryClient): number {
  let id = clientIds.get(c);
  if (id === undefined) clientIds.set(c, (id = nextClientId++));
  return id;
}

function record(id: string, image: CatalogImage): ImageRecord {
  return { id, digest: image.digest, tags: [...image.tags], sizeBytes: image.sizeBytes, createdAt: image.createdAt };
}

function imageConfig(json: ImageConfigJson): ImageConfig {
  const c = json.config ?? {};
  return {
    env: c.Env ?? [],
    entrypoint: c.Entrypoint ?? [],
    cmd: c.Cmd ?? [],
    workingDir: c.WorkingDir ?? '',
    user: c.User ?? '',
    stopSignal: c.StopSignal ?? '',
    labels: c.Labels ?? {},
    ...(c.Healthcheck?.Test?.length ? { healthcheck: healthcheck(c.Healthcheck) } : {}),
  };
}

/** Docker's Healthcheck with its nanosecond durations in ms; garbage in a field reads as 0 (the default). */
function healthcheck(h: NonNullable<NonNullable<ImageConfigJson['config']>['Healthcheck']>): HealthConfig__Output {
  const ms = (ns: unknown) => (typeof ns === 'number' && ns > 0 ? Math.round(ns / 1e6) : 0);
  return {
    test: h.Test!.map(String),
    interval_ms: ms(h.Interval),
    timeout_ms: ms(h.Timeout),
    start_period_ms: ms(h.StartPeriod),
    retries: typeof h.Retries === 'number' && h.Retries > 0 ? Math.floor(h.Retries) : 0,
  };
}

function createdAt(config: ImageConfigJson): string {
  const t = config.created ? Date.parse(config.created) : NaN;
  return Number.isNaN(t) ? new Date().toISOString() : new Date(t).toISOString();
}

/** Bytes of the regular files (and symlinks) under `dir`, as a directory's share of the disk. */
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await treeBytes(p);
    else total += await lstat(p).then((s) => s.size, () => 0);
  }
  return total;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
