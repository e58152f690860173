import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ImageStore } from '../../src/images/store';
import { leftovers, testMarker } from '../helpers/runtime';
import { waitFor } from '../helpers/wait';
import { load, ociArchive, tarOf } from './helpers';

const marker = testMarker();
let work: string;
let n = 0;
let root: string;

/** An image of one uncompressed layer holding `kib` KiB of random data (plus a shared file), tagged `tag`. */
async function image(store: ImageStore, tag: string | undefined, kib: number): Promise<string> {
  const dir = join(work, `img-${n++}`);
  const tar = tarOf(join(dir, 'rootfs'), { 'etc/shared': 'same in every image', [`data/${n}`]: randomBytes(kib << 10).toString('base64') });
  const out = join(dir, 'image.tar');
  ociArchive(dir, out, [{ tar }], { tag });
  const [rec] = await load(store, out);
  return rec.id;
}

/** Waits until the clock has moved on, so that the next use gets a later time stamp. */
async function tick(): Promise<void> {
  const t = Date.now();
  await waitFor(() => Date.now() > t, { what: 'the clock to move on' });
}

const blobs = () => readdirSync(join(root, 'blobs/sha256')).sort();
const catalog = () => JSON.parse(readFileSync(join(root, 'images.json'), 'utf8')).images as Record<string, { lastUsedAt?: string }>;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), `${marker}-gc-`));
});
beforeEach(() => {
  root = mkdtempSync(join(work, 'store-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  expect(leftovers(marker)).toEqual([]);
});

describe('image prune', () => {
  it('deletes dangling images only, and with all every unused one, never one in use', async () => {
    const store = new ImageStore(root);
    const old = await image(store, 'app:1', 64);
    // The tag moves to a new image: the old one is dangling now.
    const current = await image(store, 'app:1', 64);
    const inUse = await image(store, undefined, 64);
    const other = await image(store, 'other:1', 64);
    const keep = (id: string) => id === inUse;

    const dangling = await store.prune(false, keep);
    expect(dangling.deleted.map((i) => i.id)).toEqual([old]);
    expect(dangling.reclaimedBytes).toBeGreaterThan(64 << 10);
    expect((await store.list()).map((i) => i.id).sort()).toEqual([current, inUse, other].sort());

    const all = await store.prune(true, keep);
    expect(all.deleted.map((i) => i.id).sort()).toEqual([current, other].sort());
    expect(all.deleted.find((i) => i.id === other)!.tags).toEqual(['other:1']);
    expect((await store.list()).map((i) => i.id)).toEqual([inUse]);
    // Only the kept image's manifest, config and layer are left on disk, and its unpacked layer.
    expect(blobs()).toHaveLength(3);
    await store.resolve(inUse);
    expect(readdirSync(join(root, 'layers'))).toHaveLength(1);
    expect(await store.prune(true, keep)).toEqual({ deleted: [], reclaimedBytes: 0 });
  });

  it('counts unpacked layers in the space it reclaims', async () => {
    const store = new ImageStore(root);
    const id = await image(store, 'a:1', 256);
    const before = await store.diskUsage();
    await store.resolve(id);
    const unpacked = (await store.diskUsage()) - before;
    expect(unpacked).toBeGreaterThan(256 << 10);
    const res = await store.prune(true, () => false);
    expect(res.reclaimedBytes).toBe(before + unpacked);
    expect(await store.diskUsage()).toBe(0);
  });
});

describe('automatic collection', () => {
  it('does nothing under the limit', async () => {
    const store = new ImageStore(root);
    await image(store, 'a:1', 64);
    expect((await store.collect({ maxBytes: 100 << 20 }, () => false)).deleted).toEqual([]);
  });

  it('deletes unused images least recently used first until under 90% of the limit, never one in use', async () => {
    const store = new ImageStore(root);
    const a = await image(store, 'a:1', 300);
    const b = await image(store, 'b:1', 300);
    const c = await image(store, 'c:1', 300);
    const d = await image(store, 'd:1', 300);
    // Use order: b (oldest), then d, then a; c is in use by a container. All four are unpacked.
    for (const id of [c, b, d, a]) {
      await store.resolve(id);
      await tick();
    }
    const used = await store.diskUsage();
    // Four equal images over a limit of 80% of them: b goes, and then d to get under 90% of it.
    const limit = Math.floor(used * 0.8);
    const res = await store.collect({ maxBytes: limit }, (id) => id === c);
    expect(res.deleted.map((i) => i.id)).toEqual([b, d]);
    expect(await store.diskUsage()).toBeLessThanOrEqual(limit * 0.9);
    expect((await store.list()).map((i) => i.id).sort()).toEqual([a, c].sort());

    // Under any limit, an image in use stays even when nothing else can go.
    const res2 = await store.collect({ maxBytes: 1 }, (id) => id === c);
    expect(res2.deleted.map((i) => i.id)).toEqual([a]);
    expect((await store.list()).map((i) => i.id)).toEqual([c]);
  });

  it('remembers last use across restarts', async () => {
    const store = new ImageStore(root);
    const a = await image(store, 'a:1', 16);
    const b = await image(store, 'b:1', 16);
    await tick();
    await store.resolve(a);
    // The catalog is written with the next change.
    await image(store, 'c:1', 16);
    expect(Date.parse(catalog()[a].lastUsedAt!)).toBeGreaterThan(Date.parse(catalog()[b].lastUsedAt!));
    const again = new ImageStore(root);
    const res = await again.collect({ maxBytes: 1 }, () => false);
    expect(res.deleted[0].id).toBe(b);
  });

  it('collects by how full the filesystem is', async () => {
    const store = new ImageStore(root);
    // used, so past the grace a just-loaded image has
    await store.resolve(await image(store, 'a:1', 16));
    expect((await store.collect({ highPercent: 100 }, () => false)).deleted).toEqual([]);
    expect((await store.collect({ highPercent: 0 }, () => false)).deleted).toHaveLength(1);
  });
});
