import { promises as fs } from 'node:fs';
import * as path from 'node:path';

const CGROUP_ROOT = '/sys/fs/cgroup';

let hierarchies: Promise<string[]> | null = null;

/**
 * The cgroup hierarchies mounted under /sys/fs/cgroup (v1 controllers, name=systemd, unified),
 * skipping the cpu,cpuacct-style symlinks so each is visited once. On a pure v2 host that is the
 * root itself.
 */
export function cgroupHierarchies(): Promise<string[]> {
  hierarchies ??= (async () => {
    const entries = await fs.readdir(CGROUP_ROOT, { withFileTypes: true }).catch(() => []);
    const dirs = entries.filter((e) => e.isDirectory()).map((e) => path.join(CGROUP_ROOT, e.name));
    const isV2 = await fs.stat(path.join(CGROUP_ROOT, 'cgroup.controllers')).then(
      () => true,
      () => false,
    );
    return isV2 ? [CGROUP_ROOT] : dirs;
  })();
  return hierarchies;
}

/** rmdir with a few retries while the last processes leave; ENOENT counts as done. */
async function rmdirPatiently(dir: string, tries: number): Promise<boolean> {
  for (let i = 0; ; i++) {
    try {
      await fs.rmdir(dir);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return true;
      if (code === 'ENOTEMPTY' || i >= tries) return false;
      await new Promise((r) => setTimeout(r, 20 * (i + 1)));
    }
  }
}

/** Removes a container's cgroup dirs in every hierarchy (plus any extra paths runc recorded). */
export async function removeContainerCgroups(parent: string, id: string, extra: string[] = []): Promise<string[]> {
  const dirs = new Set([...(await cgroupHierarchies()).map((h) => path.join(h, parent, id)), ...extra]);
  const left: string[] = [];
  await Promise.all([...dirs].map(async (d) => ((await rmdirPatiently(d, 10)) ? 0 : left.push(d))));
  if (!left.length) return left;
  // something runc does not know of is still in there (say a `runc init` whose `runc create` was
  // killed half-way): these are the container's own cgroups, so whatever is in them goes
  const pids = new Set<number>();
  for (const d of left) {
    const procs = await fs.readFile(path.join(d, 'cgroup.procs'), 'utf8').catch(() => '');
    for (const p of procs.split('\n')) if (Number(p) > 0) pids.add(Number(p));
  }
  if (!pids.size) return left;
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  const still: string[] = [];
  await Promise.all(left.map(async (d) => ((await rmdirPatiently(d, 10)) ? 0 : still.push(d))));
  return still;
}

/** Removes the cgroup parent dirs (deepest first) where they are empty; others' children keep them. */
export async function removeCgroupParent(parent: string): Promise<void> {
  const parts = parent.split('/').filter(Boolean);
  for (let n = parts.length; n > 0; n--) {
    const rel = parts.slice(0, n).join('/');
    await Promise.all((await cgroupHierarchies()).map((h) => rmdirPatiently(path.join(h, rel), 3)));
  }
}

/**
 * How many processes of a container the kernel killed for lack of memory: "oom_kill" in
 * memory.oom_control of the v1 memory hierarchy, or memory.events on v2. Readable until the
 * container's cgroup is removed. Only those two files, read at once: the exit is reported after.
 */
export async function oomKills(parent: string, id: string): Promise<number> {
  const files = (await cgroupHierarchies()).flatMap((h) => {
    const name = path.basename(h);
    if (name === 'memory') return [path.join(h, parent, id, 'memory.oom_control')];
    return h === CGROUP_ROOT || name === 'unified' ? [path.join(h, parent, id, 'memory.events')] : [];
  });
  const counts = await Promise.all(
    files.map(async (f) => Number(/^oom_kill (\d+)$/m.exec(await fs.readFile(f, 'utf8').catch(() => ''))?.[1] ?? 0)),
  );
  return Math.max(0, ...counts);
}
