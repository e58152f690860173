import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GC_MIN_AGE_MS, ImageStore } from '../../src/images/store';
import { load, ociArchive, tarOf } from './helpers';

let work: string;
let n = 0;
let root: string;

/** An image of one layer of `kib` KiB of random data, tagged `tag`. */
async function image(store: ImageStore, tag: string, kib: number): Promise<string> {
  const dir = join(work, `img-${n++}`);
  const tar = tarOf(join(dir, 'rootfs'), { [`data/${n}`]: randomBytes(kib << 10).toString('base64') });
  const out = join(dir, 'image.tar');
  ociArchive(dir, out, [{ tar }], { tag });
  const [rec] = await load(store, out);
  return rec.id;
}

const ids = async (store: ImageStore) => (await store.list()).map((i) => i.id).sort();

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'shoal-gc-grace-'));
});
beforeEach(() => {
  root = mkdtempSync(join(work, 'store-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('collection and images just loaded', () => {
  it('leaves an image just loaded alone, however full the disk, until it is used or the grace has passed', async () => {
    const store = new ImageStore(root);
    const fresh = await image(store, 'fresh:1', 64);
    // the disk is over the mark at once (as in the report: deleted 18 ms after the load)
    const now = await store.collect({ highPercent: 0 }, () => false);
    expect(now.deleted).toEqual([]);
    expect(now.stillOver).toMatch(/^the disk holding .* is \d+% full, over --image-gc-high-percent 0$/);
    expect(await ids(store)).toEqual([fresh]);
    // once the grace is over it may go
    const later = await store.collect({ highPercent: 0 }, () => false, Date.now() + GC_MIN_AGE_MS + 1);
    expect(later.deleted.map((i) => i.id)).toEqual([fresh]);
  });

  it('ends the grace once a container has used the image', async () => {
    const store = new ImageStore(root);
    const used = await image(store, 'used:1', 64);
    const fresh = await image(store, 'fresh:1', 64);
    await store.resolve(used);
    expect((await store.collect({ maxBytes: 1 }, () => false)).deleted.map((i) => i.id)).toEqual([used]);
    expect(await ids(store)).toEqual([fresh]);
  });

  it('makes room for a new image from the others, and keeps the new one', async () => {
    const store = new ImageStore(root);
    const old = await image(store, 'old:1', 256);
    await store.resolve(old);
    const before = await store.diskUsage();
    const fresh = await image(store, 'fresh:1', 256);
    // room for about one image of the two
    await store.admit([fresh], { maxBytes: Math.floor(before * 1.3) }, () => false);
    expect(await ids(store)).toEqual([fresh]);
  });

  it('refuses a load the collection would undo at once, saying the disk is too full, and keeps nothing of it', async () => {
    const store = new ImageStore(root);
    const kept = await image(store, 'kept:1', 16);
    const big = await image(store, 'big:1', 256);
    // kept is in use; with big, the store is over the limit whatever else goes
    await expect(store.admit([big], { maxBytes: 200 << 10 }, (id) => id === kept)).rejects.toThrow(
      /^the disk is too full to keep the image: the image store takes .+, over --image-gc-max-size 200KiB even with every unused image deleted; free space or raise the limit$/,
    );
    expect(await ids(store)).toEqual([kept]);
    // an image a task assigned here wants is kept, and the load is no error
    const wanted = await image(store, 'wanted:1', 256);
    await store.admit([wanted], { maxBytes: 200 << 10 }, (id) => id === kept || id === wanted);
    expect(await ids(store)).toEqual([kept, wanted].sort());
  });
});
