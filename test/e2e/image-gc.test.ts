import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configuredImage } from './images';
import { apiOf, runningOf, waitFor } from './observe';
import { useE2eNode } from './use-node';
import { IDLE } from '../helpers/workloads';

const MAX_MIB = 20;
// No minimum age: the images loaded here are collectable at once, least recently used first.
const node = useE2eNode({ daemonArgs: () => [`--image-gc-max-size=${MAX_MIB}m`, '--image-gc-min-age=0'] });
const LAYER = 5 * 2 ** 20;

const tags = async () => (await apiOf(node).listImages()).images.flatMap((i) => i.tags).sort();

/** Bytes of the files the image store keeps (blobs and unpacked layers), as its collector counts them. */
function storeBytes(dir = path.join(node.dataDir, 'images')): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    total += e.isDirectory() ? storeBytes(p) : fs.lstatSync(p).size;
  }
  return total;
}

describe('automatic image collection in shoald', () => {
  it('--image-gc-max-size: deletes unused images, least recently used first, and keeps those of running tasks', async () => {
    // The test image is used first, so it is the least recently used of all: only its task keeps it.
    node.ok('service', 'create', '--name', 'base', 'shoal-test:latest', ...IDLE);
    const loaded: string[] = [];
    for (let i = 1; i <= 4; i++) {
      const tag = `gc-${i}:latest`;
      expect(node.ok('image', 'load', configuredImage(node, tag, {}, LAYER))).toBe(`Loaded image: ${tag}\n`);
      loaded.push(tag);
    }
    // 4 MiB of busybox in use and 4 × 5 MiB layers: over 20 MiB, so some must go.
    const left = await waitFor('the collector to bring the store under its limit', async () => {
      const now = await tags();
      return now.length < 5 && storeBytes() <= MAX_MIB * 2 ** 20 && now;
    });
    expect(left).toContain('shoal-test:latest');
    const kept = loaded.filter((t) => left.includes(t));
    // What went is the oldest: what is left is the newest, in load order.
    expect(kept).toEqual(loaded.slice(loaded.length - kept.length));
    expect(kept).toContain('gc-4:latest');
    expect(fs.readFileSync(path.join(node.dir, 'shoald.log'), 'utf8')).toMatch(/image store over its limit: deleted least recently used images/);
    expect(await runningOf(node, 'base')).toHaveLength(1);
  });

  it('--image-gc-high-percent: when the disk is fuller, every unused image goes, those of running tasks stay, and a load that could not stay is refused', async () => {
    const fsStat = fs.statfsSync(node.dataDir);
    // The collector's own measure; the test needs a disk more than 1% full, which every real one is.
    expect((100 * (fsStat.blocks - fsStat.bfree)) / fsStat.blocks).toBeGreaterThan(1);
    node.ok('service', 'create', '--name', 'keep', 'shoal-test:latest', ...IDLE);
    const [task] = await runningOf(node, 'keep');
    node.ok('image', 'load', configuredImage(node, 'gc-5:latest', { Labels: { n: '5' } }));
    expect(await tags()).toContain('gc-5:latest');

    await node.stop();
    node.daemonArgs = [...node.daemonArgs.filter((a) => !a.startsWith('--image-gc-')), '--image-gc-high-percent=1', '--image-gc-min-age=0'];
    await node.start();
    await waitFor('the adopted task to run', async () => (await runningOf(node, 'keep')).length === 1);

    // Storing an image starts a collection: the old unused image goes, and the new one, which would
    // be the next to go, is refused rather than reported loaded.
    const load = node.shoal('image', 'load', configuredImage(node, 'gc-6:latest', { Labels: { n: '6' } }));
    expect(load.code).toBe(1);
    expect(load.stderr).toMatch(/^Error: the disk is too full to keep the image: the disk holding .* is \d+% full, over --image-gc-high-percent 1 even with every unused image deleted; free space or raise the limit\n$/);
    expect(await tags()).toEqual(['shoal-test:latest']);
    expect((await runningOf(node, 'keep')).map((t) => t.id)).toEqual([task.id]);
  });

  it('--image-gc-min-age: an image just loaded is kept until it has been used or is old enough, and the refusal says so', async () => {
    await node.stop();
    node.daemonArgs = [...node.daemonArgs.filter((a) => !a.startsWith('--image-gc-')), `--image-gc-max-size=${MAX_MIB}m`];
    await node.start();
    for (let i = 7; i <= 9; i++) node.ok('image', 'load', configuredImage(node, `gc-${i}:latest`, {}, LAYER));
    // Three 5 MiB layers and the test image's: over 20 MiB only with the next load, and none may go.
    const load = node.shoal('image', 'load', configuredImage(node, 'gc-10:latest', {}, LAYER));
    expect(load.code).toBe(1);
    expect(load.stderr).toMatch(/even with every unused image deleted but the 3 loaded or pulled in the last 5m and not yet run \(--image-gc-min-age\); free space or raise the limit/);
    expect(await tags()).toEqual(expect.arrayContaining(['gc-7:latest', 'gc-8:latest', 'gc-9:latest']));
    expect(await tags()).not.toContain('gc-10:latest');
  });
});
