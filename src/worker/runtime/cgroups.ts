import { promises as fs } from 'node:fs';
import * as path from 'node:path';

const CGROUP_ROOT = '/sys/fs/cgroup';

/** A cgroup filesystem mounted on this host, from /proc/self/mountinfo. */
export interface CgroupMount {
  /** Where it is mounted, e.g. /sys/fs/cgroup/memory. */
  mountPoint: string;
  /** The cgroup of the hierarchy that is the mount's root ("/" unless it is a bind mount of a sub-tree or in a cgroup namespace). */
  root: string;
  version: 1 | 2;
  /** MAJ:MIN of the mount: the same for every mount of one hierarchy. */
  device: string;
  /** Super options: for v1 the controllers ("memory", "cpu", "cpuacct", "name=systemd") among others. */
  options: string[];
}

/** One line of /proc/<pid>/cgroup: the process's cgroup in one hierarchy. */
export interface CgroupMembership {
  /** The v1 controllers of the hierarchy; empty for the v2 (unified) one. */
  controllers: string[];
  /** The cgroup, relative to the hierarchy's root, e.g. /shoal/<id>. */
  path: string;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
const unescapeMount = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The cgroup (v1) and cgroup2 mounts listed in a mountinfo file's text. */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL FIELDS...] - FSTYPE SOURCE SUPER-OPTIONS
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const fields = pre.split(' ');
    const [fstype, , superOptions = ''] = post.split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    out.push({
      mountPoint: unescapeMount(fields[4]),
      root: unescapeMount(fields[3]),
      version: fstype === 'cgroup2' ? 2 : 1,
      device: fields[2],
      options: superOptions.split(','),
    });
  }
  return out;
}

/** The lines of a /proc/<pid>/cgroup file's text. */
export function parseProcCgroup(text: string): CgroupMembership[] {
  const out: CgroupMembership[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.+)$/.exec(line);
    if (m) out.push({ controllers: m[2] ? m[2].split(',') : [], path: m[3] });
  }
  return out;
}

/** The directory of `cgroup` (relative to the hierarchy's root) under a mount of that hierarchy, or null if the mount does not show it. */
function dirUnder(mount: CgroupMount, cgroup: string): string | null {
  const rel = path.posix.relative(mount.root, cgroup);
  return rel.startsWith('..') ? null : path.posix.join(mount.mountPoint, rel);
}

/** The mount of the hierarchy that has `controller`: the v1 one that lists it, else the unified (v2) one. */
function mountOf(mounts: CgroupMount[], controller: string): CgroupMount | undefined {
  return mounts.find((m) => m.version === 1 && m.options.includes(controller)) ?? mounts.find((m) => m.version === 2);
}

/**
 * Where a process's cgroups are, from its /proc/<pid>/cgroup and the host's mountinfo: the
 * directory of each v1 controller it is in (by controller, "name=systemd" included), and of its
 * unified (v2) cgroup under the key "". On a pure v2 host that key is the only one.
 */
export function cgroupDirs(procCgroup: string, mountinfo: string): Map<string, string> {
  const mounts = parseCgroupMounts(mountinfo);
  const dirs = new Map<string, string>();
  for (const { controllers, path: cgroup } of parseProcCgroup(procCgroup)) {
    const candidates = controllers.length
      ? mounts.filter((m) => m.version === 1 && controllers.every((c) => m.options.includes(c)))
      : mounts.filter((m) => m.version === 2);
    const dir = candidates.map((m) => dirUnder(m, cgroup)).find((d) => d !== null);
    if (!dir) continue;
    for (const c of controllers.length ? controllers : ['']) dirs.set(c, dir);
  }
  return dirs;
}

/**
 * The directory of `cgroup` (as runc's cgroupsPath, "/<parent>/<id>") for one controller: in the
 * v1 hierarchy that has the controller, or in the unified hierarchy on a v2 host. Null if no
 * mounted hierarchy has it.
 */
export function controllerDir(mountinfo: string, controller: string, cgroup: string): string | null {
  const mount = mountOf(parseCgroupMounts(mountinfo), controller);
  return mount ? dirUnder(mount, cgroup) : null;
}

/** cgroupDirs() of a running process, read from /proc. */
export async function processCgroupDirs(pid: number): Promise<Map<string, string>> {
  const [own, mountinfo] = await Promise.all([fs.readFile(`/proc/${pid}/cgroup`, 'utf8'), fs.readFile('/proc/self/mountinfo', 'utf8')]);
  return cgroupDirs(own, mountinfo);
}

/**
 * The mount points of the cgroup hierarchies: every v1 controller's (and name=systemd's) plus the
 * unified one on a hybrid host, only the unified one on a pure v2 host. Only mounts at or below
 * /sys/fs/cgroup count, each hierarchy once.
 */
export function hierarchyMounts(mountinfo: string): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const m of parseCgroupMounts(mountinfo)) {
    if (!(m.mountPoint === CGROUP_ROOT || m.mountPoint.startsWith(`${CGROUP_ROOT}/`)) || seen.has(m.device)) continue;
    seen.add(m.device);
    out.push(m.mountPoint);
  }
  return out;
}

let mountinfo: Promise<string> | null = null;

/** This host's mountinfo, read once: its cgroup mounts do not move while shoald runs. */
function hostMountinfo(): Promise<string> {
  mountinfo ??= fs.readFile('/proc/self/mountinfo', 'utf8');
  return mountinfo;
}

/** hierarchyMounts() of this host. */
function cgroupHierarchies(): Promise<string[]> {
  return hostMountinfo().then(hierarchyMounts, () => []);
}

/** controllerDir() on this host. */
export async function hostControllerDir(controller: string, cgroup: string): Promise<string | null> {
  return controllerDir(await hostMountinfo(), controller, cgroup);
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
