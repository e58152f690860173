import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { internal, invalidArgument } from '../../common/errors';
import { type Exec, lastLine } from './exec';

/** The kernel copies mount options into one page; overlayfs stacks at most 500 lower layers. */
const MAX_OPTIONS = 4095;
const MAX_LAYERS = 500;

/** The OCI spec's mount of the container's root: an overlay runc makes inside the container. */
export interface RootMount {
  destination: '/';
  type: 'overlay';
  source: 'overlay';
  options: string[];
}

/**
 * Lays out the container's overlay in the bundle (upper and work dir, the layers reached through
 * short symlinks <bundle>/l/<n>) and returns the mount that makes its root: runc mounts it inside
 * the container's own mount namespace, so no mount process runs and nothing is left on the host
 * to unmount. runc runs its init in <bundle>/rootfs, so the paths are relative to that: the
 * lowerdir option stays short (about 7 bytes a layer) however deep the image store's paths are.
 */
export async function prepareRootfs(bundle: string, layers: string[]): Promise<RootMount> {
  if (layers.length === 0) throw invalidArgument('the container has no image layers to mount');
  if (layers.length > MAX_LAYERS) throw invalidArgument(`the image has ${layers.length} layers; overlayfs stacks at most ${MAX_LAYERS}`);
  const options = overlayOptions(layers.length, '../');
  if (options.length > MAX_OPTIONS) throw invalidArgument(`the image has too many layers (${layers.length}) for one overlay mount`);
  await Promise.all(
    layers.map(async (l) => {
      if (!path.isAbsolute(l)) throw invalidArgument(`image layer path "${l}" is not absolute`);
      const st = await fs.stat(l).catch(() => null);
      if (!st?.isDirectory()) throw invalidArgument(`image layer directory ${l} does not exist`);
    }),
  );
  await Promise.all(['rootfs', 'upper', 'work', 'l'].map((d) => fs.mkdir(path.join(bundle, d))));
  await Promise.all(layers.map((l, i) => fs.symlink(l, path.join(bundle, 'l', String(i)))));
  return { destination: '/', type: 'overlay', source: 'overlay', options: [options] };
}

/**
 * Mounts a prepared bundle's overlay at <bundle>/rootfs on the host, to read the image's files
 * before the container exists (unmountRootfs undoes it). mount(8) runs in the bundle.
 */
export async function mountRootfs(run: Exec, bundle: string, layerCount: number): Promise<void> {
  const r = await run('mount', ['-t', 'overlay', '-o', overlayOptions(layerCount, ''), 'shoal', 'rootfs'], { cwd: bundle });
  if (r.code !== 0) throw internal(`cannot mount the container rootfs: ${lastLine(r.stderr) || `mount exited with ${r.code}`}`);
}

/** The overlay's options for a bundle's layout, its paths prefixed by `from`; overlay wants the topmost layer first. */
function overlayOptions(layerCount: number, from: string): string {
  const lower = Array.from({ length: layerCount }, (_, i) => `${from}l/${layerCount - 1 - i}`).join(':');
  return `lowerdir=${lower},upperdir=${from}upper,workdir=${from}work`;
}

/** Mount points from /proc/self/mountinfo (octal escapes decoded). */
export async function mountPoints(): Promise<Set<string>> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const mp = line.split(' ')[4];
    if (mp) out.add(mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

/** Unmounts <bundle>/rootfs if it is mounted (every stacked mount); lazily if it is busy. Idempotent. */
export async function unmountRootfs(run: Exec, bundle: string, mounted?: Set<string>): Promise<void> {
  const target = path.join(bundle, 'rootfs');
  let points = mounted ?? (await mountPoints());
  for (let i = 0; i < 8 && points.has(target); i++) {
    const r = await run('umount', [target]);
    if (r.code !== 0) {
      const lazy = await run('umount', ['-l', target]);
      if (lazy.code !== 0) {
        points = await mountPoints();
        if (!points.has(target)) return;
        throw internal(`cannot unmount ${target}: ${lastLine(r.stderr) || lastLine(lazy.stderr)}`);
      }
    }
    points = await mountPoints();
  }
}
