/**
 * The floor a node's convergence is compared with, measured in the same run: bare `runc run -d` of
 * N busybox containers over one read-only rootfs, `parallel` at a time, and their stop (`runc kill`
 * TERM, wait until stopped, `runc delete`). No image store, overlay mount, conmon, cgroup limits or
 * orchestration: what runc and the kernel alone cost on this machine at this moment. Machines (and
 * one machine from minute to minute) differ by 2-4×, so only a ratio to this floor says how much
 * shoal adds.
 */
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { removeCgroupParent } from '../src/worker/runtime/cgroups';
import { makeBusyboxLayer, newId } from '../test/helpers/runtime';

const run = promisify(execFile);
const RUNC = '/usr/sbin/runc';
// As the convergence workload: PID 1 traps TERM, so a stop is one signal and an exit.
const WORKLOAD = ['sh', '-c', 'trap "exit 0" TERM; sleep 1000000 & wait'];

export interface Floor {
  startMs: number;
  stopMs: number;
}

/** Runs `work` over `items`, at most `parallel` at a time. */
async function pool<T>(items: T[], parallel: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(parallel, items.length) }, async () => {
    while (next < items.length) await work(items[next++]);
  });
  await Promise.all(lanes);
}

/** The spec `runc spec` writes, made to run WORKLOAD detached over `rootfs`, in cgroup `cgroup`. */
async function bundle(dir: string, rootfs: string, cgroup: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  await run(RUNC, ['spec', '--bundle', dir]);
  const file = path.join(dir, 'config.json');
  const spec = JSON.parse(fs.readFileSync(file, 'utf8'));
  spec.root = { path: rootfs, readonly: true };
  spec.process.terminal = false;
  spec.process.args = WORKLOAD;
  spec.linux.cgroupsPath = cgroup;
  fs.writeFileSync(file, JSON.stringify(spec));
}

/**
 * `runc run -d`: the container keeps runc's stdio, so it gets /dev/null; output pipes would stay
 * open as long as the container runs.
 */
function runDetached(runcRoot: string, bundleDir: string, id: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(RUNC, ['--root', runcRoot, 'run', '-d', '--bundle', bundleDir, id], { stdio: 'ignore' });
    p.once('error', reject);
    p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`runc run -d ${id} exited ${code}`))));
  });
}

async function stopped(runcRoot: string, id: string): Promise<void> {
  for (;;) {
    const { stdout } = await run(RUNC, ['--root', runcRoot, 'state', id]);
    if (JSON.parse(stdout).status === 'stopped') return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** One measurement of N containers; everything it made is gone when it returns or throws. */
export async function runcFloor(workDir: string, n: number, parallel: number): Promise<Floor> {
  const base = fs.mkdtempSync(path.join(workDir, 'runc-floor-'));
  const runcRoot = path.join(base, 'runc');
  const cgroupParent = path.basename(base);
  const ids = Array.from({ length: n }, () => newId());
  try {
    const rootfs = makeBusyboxLayer(path.join(base, 'rootfs'));
    for (const id of ids) await bundle(path.join(base, id), rootfs, `/${cgroupParent}/${id}`);
    const t0 = performance.now();
    await pool(ids, parallel, (id) => runDetached(runcRoot, path.join(base, id), id));
    const t1 = performance.now();
    await pool(ids, parallel, async (id) => {
      await run(RUNC, ['--root', runcRoot, 'kill', id, 'TERM']);
      await stopped(runcRoot, id);
      await run(RUNC, ['--root', runcRoot, 'delete', id]);
    });
    const t2 = performance.now();
    return { startMs: t1 - t0, stopMs: t2 - t1 };
  } finally {
    for (const id of ids) await run(RUNC, ['--root', runcRoot, 'delete', '-f', id]).catch(() => undefined);
    await removeCgroupParent(cgroupParent);
    fs.rmSync(base, { recursive: true, force: true });
  }
}
