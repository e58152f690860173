import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { quietLogger } from '../../src/common/logger';
import { Runtime, type ContainerConfig, type RuntimeOptions } from '../../src/worker/runtime/runtime';
import { waitFor } from './wait';

// Runtime test helpers that bench/spawn.ts uses too, so no vitest here: test/runtime/helpers.ts has the hooks.

const APPLETS = ['sh', 'sleep', 'cat', 'hostname', 'id', 'echo', 'httpd', 'pwd', 'env', 'true'];

/** A one-layer busybox rootfs: /bin/busybox plus applet symlinks, /etc/passwd with root and nobody. */
export function makeBusyboxLayer(dir: string): string {
  mkdirSync(path.join(dir, 'bin'), { recursive: true });
  mkdirSync(path.join(dir, 'etc'), { recursive: true });
  mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  chmodSync(path.join(dir, 'tmp'), 0o1777);
  copyFileSync('/bin/busybox', path.join(dir, 'bin/busybox'));
  chmodSync(path.join(dir, 'bin/busybox'), 0o755);
  for (const a of APPLETS) symlinkSync('busybox', path.join(dir, 'bin', a));
  writeFileSync(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  writeFileSync(path.join(dir, 'etc/group'), 'root:x:0:\nstaff:x:50:nobody\nnogroup:x:65534:\n');
  return dir;
}

let n = 0;
/** A 25-character id like a task id. */
export function newId(): string {
  const s = `${Date.now().toString(36)}${process.pid.toString(36)}${(n++).toString(36)}${Math.random().toString(36).slice(2)}`;
  return s.replace(/[^a-z0-9]/g, '').padEnd(25, '0').slice(-25);
}

export function config(id: string, layer: string, logDir: string, over: Partial<ContainerConfig> = {}): ContainerConfig {
  return {
    id,
    hostname: `h-${id.slice(0, 8)}`,
    args: ['sleep', '60'],
    env: [],
    cwd: '/',
    user: '',
    layers: [layer],
    memoryBytes: 0,
    nanoCpus: 0,
    pids: 0,
    logPath: path.join(logDir, `${id}.log`),
    ...over,
  };
}

/** A fresh name for what one test file or node makes (dirs, cgroups, runc root), so its leftovers can be found. */
export function testMarker(): string {
  return `shoal-test-${randomBytes(4).toString('hex')}`;
}

/**
 * Mounts, cgroup dirs and processes whose names or arguments contain `marker` (or `runcRoot`), and
 * the containers runc knows under `runcRoot`: what a test run with these names left behind. A
 * runc failure is an error, not "nothing there": only a missing runc root means no containers.
 */
export function leftovers(marker: string, runcRoot?: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) if (line.includes(marker)) out.push(`mount: ${line}`);
  const found = execFileSync('find', ['/sys/fs/cgroup', '-maxdepth', '3', '-name', `*${marker}*`], { encoding: 'utf8' }).trim();
  if (found) out.push(...found.split('\n').map((f) => `cgroup: ${f}`));
  if (runcRoot && existsSync(runcRoot)) {
    const r = spawnSync('/usr/sbin/runc', ['--root', runcRoot, 'list', '-q'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`runc --root ${runcRoot} list failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr}`);
    const list = r.stdout.trim();
    if (list) out.push(...list.split('\n').map((c) => `runc: ${c}`));
  }
  const ps = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  for (const l of ps.split('\n')) {
    if ((l.includes(marker) || (runcRoot && l.includes(runcRoot))) && !l.includes('ps -eo')) out.push(`process: ${l.trim()}`);
  }
  return out;
}

/** Whether a process runs (a zombie does not). */
export function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** Closes runtimes and waits until their process spawners have ended. */
export async function closeRuntimes(...rts: Runtime[]): Promise<void> {
  const pids = rts.map((r) => r.spawnerPid).filter((p): p is number => p !== undefined);
  for (const r of rts) r.close();
  for (const pid of pids) await waitFor(() => !alive(pid), { what: `the process spawner ${pid} to end` });
}

/** A Runtime of its own: a temp dir with a busybox layer, its state and runc root in there, cgroups below `marker`. */
export interface RuntimeSetup {
  base: string;
  layer: string;
  /** Where config() puts containers' logs. */
  logs: string;
  opts: RuntimeOptions;
  rt: Runtime;
}

export function setUpRuntime(marker: string): RuntimeSetup {
  const base = mkdtempSync(path.join(os.tmpdir(), `${marker}-`));
  try {
    const layer = makeBusyboxLayer(path.join(base, 'layer'));
    const opts: RuntimeOptions = { root: path.join(base, 'root'), runcRoot: path.join(base, 'runc'), cgroupParent: marker, log: quietLogger() };
    return { base, layer, logs: path.join(base, 'logs'), opts, rt: new Runtime(opts) };
  } catch (err) {
    rmSync(base, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Removes every container of the setup's runtime, closes it with `close` (by default waiting for
 * its spawner to end) and removes its temp dir; returns what was left behind (leftovers()), which
 * should be nothing.
 */
export async function tearDownRuntime(
  marker: string,
  setup: RuntimeSetup | undefined,
  close: (rt: Runtime) => void | Promise<void> = (rt) => closeRuntimes(rt),
): Promise<string[]> {
  if (!setup) return [];
  let left: string[];
  try {
    await setup.rt.removeAll();
  } finally {
    await close(setup.rt);
    left = leftovers(marker, setup.opts.runcRoot);
    rmSync(setup.base, { recursive: true, force: true });
  }
  return left;
}
