import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Runtime, type RuntimeOptions } from '../../src/worker/runtime/runtime';
import { cgroupLimitsOf, cpuWeightOfShares } from '../helpers/cgroup-limits';
import { waitFor } from '../helpers/wait';
import { closeRuntimes, config, leftovers, newId, testMarker, useRuntime } from './helpers';

// ---- helpers ----
/** Lines of a k8s-file log: { stream, text }. */
function logLines(file: string): { stream: string; tag: string; text: string }[] {
  let raw = '';
  try {
    raw = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return raw
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = /^(\S+) (stdout|stderr) ([FP]) (.*)$/.exec(l);
      if (!m) throw new Error(`not a k8s-file line: ${l}`);
      return { stream: m[2], tag: m[3], text: m[4] };
    });
}

// ---- tests ----

const marker = testMarker();
let base: string;
let layer: string;
let logs: string;
let opts: RuntimeOptions;
let rt: Runtime;
const extra: Runtime[] = [];

useRuntime(marker, (s) => ({ base, layer, logs, opts, rt } = s));
// Runtimes a test made besides rt end with it, passed or failed.
afterEach(() => closeRuntimes(...extra.splice(0)));

const cfg = (over: Parameters<typeof config>[3] = {}) => config(newId(), layer, logs, over);

async function run(over: Parameters<typeof config>[3]) {
  const c = cfg(over);
  const exited = new Promise<number>((resolve) => {
    const off = rt.onExit((id, code) => {
      if (id === c.id) {
        off();
        resolve(code);
      }
    });
  });
  await rt.create(c);
  await rt.start(c.id);
  const code = await exited;
  return { c, code, lines: logLines(c.logPath) };
}

describe('Runtime (runc under conmon)', () => {
  it('logs stdout and stderr as k8s-file lines and records the exit code', async () => {
    const { c, code, lines } = await run({ args: ['sh', '-c', 'echo to-out; echo to-err >&2; exit 5'] });
    expect(code).toBe(5);
    expect(lines).toContainEqual({ stream: 'stdout', tag: 'F', text: 'to-out' });
    expect(lines).toContainEqual({ stream: 'stderr', tag: 'F', text: 'to-err' });
    expect(await rt.state(c.id)).toEqual({ id: c.id, status: 'stopped', pid: 0, exitCode: 5 });
  });

  it('applies hostname, env, cwd and a named user with its groups', async () => {
    const { code, lines } = await run({
      hostname: 'web-1',
      env: ['FOO=bar baz'],
      cwd: '/tmp',
      user: 'nobody',
      args: ['sh', '-c', 'hostname; cat /etc/hostname; echo "$FOO"; pwd; id -u; id -g; id -G; echo "$HOME"; grep -c web-1 /etc/hosts; test -s /etc/resolv.conf && echo resolv'],
    });
    expect(code).toBe(0);
    expect(lines.map((l) => l.text)).toEqual(['web-1', 'web-1', 'bar baz', '/tmp', '65534', '65534', '65534 50', '/nonexistent', '1', 'resolv']);
  });

  it('gives a container the resolv.conf it is handed, else a copy of the host’s', async () => {
    const handed = await run({ resolvConf: 'nameserver 127.0.0.11\noptions ndots:0\n', args: ['cat', '/etc/resolv.conf'] });
    expect(handed.lines.map((l) => l.text)).toEqual(['nameserver 127.0.0.11', 'options ndots:0']);
    const host = await run({ args: ['cat', '/etc/resolv.conf'] });
    expect(host.lines.map((l) => l.text)).toEqual(readFileSync('/etc/resolv.conf', 'utf8').split('\n').filter(Boolean));
  });

  it('applies a numeric uid:gid and runs as root by default', async () => {
    const a = await run({ user: '1234:50', args: ['sh', '-c', 'id -u; id -g'] });
    expect(a.lines.map((l) => l.text)).toEqual(['1234', '50']);
    const b = await run({ args: ['sh', '-c', 'id -u; id -g; echo $HOME; echo $PATH'] });
    expect(b.lines.map((l) => l.text)).toEqual(['0', '0', '/root', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  });

  it('refuses an unknown user name with a clear error and leaves nothing', async () => {
    const c = cfg({ user: 'alice' });
    await expect(rt.create(c)).rejects.toThrow('unable to find user alice: no matching entries in passwd file');
    expect(await rt.state(c.id)).toBeNull();
    expect(leftovers(c.id, opts.runcRoot)).toEqual([]);
  });

  it('puts memory, cpu and pids limits into the cgroup', async () => {
    const c = cfg({ memoryBytes: 64 * 1024 * 1024, nanoCpus: 500_000_000, pids: 42 });
    await rt.create(c);
    await rt.start(c.id);
    const st = await rt.state(c.id);
    expect(st).toMatchObject({ status: 'running', exitCode: null });
    // Read where the container's own /proc/<pid>/cgroup says it is, on cgroup v1 or v2.
    const limits = await cgroupLimitsOf(st!.pid);
    expect(limits).toMatchObject({ memoryBytes: 64 * 1024 * 1024, cpuQuotaUs: 50_000, cpuPeriodUs: 100_000, cpuWeight: cpuWeightOfShares(512), pids: 42 });
    if (limits.cpuShares !== null) expect(limits.cpuShares).toBe(512);
    for (const ctrl of ['memory', 'cpu', 'pids']) {
      const dir = limits.dirs.get(ctrl) ?? limits.dirs.get('');
      expect(dir).toMatch(new RegExp(`/${marker}/${c.id}$`));
      // the runtime finds the same place from the host's mounts alone
      expect(await rt.cgroupDir(ctrl, c.id)).toBe(dir);
    }
  });

  it('surfaces runc\'s error when the command does not exist, and leaves nothing', async () => {
    const c = cfg({ args: ['nosuchcmd'] });
    await expect(rt.create(c)).rejects.toThrow('exec: "nosuchcmd": executable file not found in $PATH');
    expect(await rt.state(c.id)).toBeNull();
    expect(await rt.list()).toEqual([]);
    expect(existsSync(path.join(opts.root, 'bundles', c.id))).toBe(false);
    expect(leftovers(c.id, opts.runcRoot)).toEqual([]);
  });

  it('stops a shell that traps SIGTERM within the grace period', async () => {
    const c = cfg({ args: ['sh', '-c', 'trap "echo got TERM; exit 3" TERM; echo ready; while true; do sleep 0.1; done'] });
    await rt.create(c);
    await rt.start(c.id);
    await waitFor(() => logLines(c.logPath).some((l) => l.text === 'ready'), { what: 'the container to log ready' });
    await rt.stop(c.id, 'SIGTERM', 60_000);
    // 3 is the trap's: a SIGKILL after the grace period would have made it 137
    expect(await rt.state(c.id)).toMatchObject({ status: 'stopped', exitCode: 3 });
    expect(logLines(c.logPath).map((l) => l.text)).toContain('got TERM');
  });

  it('falls back to SIGKILL when the container ignores the stop signal', async () => {
    const c = cfg({ args: ['sh', '-c', 'trap "" TERM; echo ready; while true; do sleep 0.1; done'] });
    await rt.create(c);
    await rt.start(c.id);
    await waitFor(() => logLines(c.logPath).some((l) => l.text === 'ready'), { what: 'the container to log ready' });
    await rt.stop(c.id, 'TERM', 300);
    expect(await rt.state(c.id)).toMatchObject({ status: 'stopped', exitCode: 137 });
    await rt.stop(c.id, 'SIGTERM', 300); // already stopped: fine
  });

  it('starts a created container once; refuses a second start and one whose process died before it', async () => {
    const c = cfg({ args: ['sh', '-c', 'echo started; exit 4'] });
    const exited = new Promise<number>((resolve) => rt.onExit((id, code) => id === c.id && resolve(code)));
    await rt.create(c);
    expect(await rt.state(c.id)).toMatchObject({ status: 'created' });
    await rt.start(c.id);
    expect(await exited).toBe(4);
    expect(logLines(c.logPath).map((l) => l.text)).toEqual(['started']);
    await expect(rt.start(c.id)).rejects.toThrow(`container ${c.id} cannot be started: it is stopped`);
    await rt.remove(c.id);

    const d = cfg();
    await rt.create(d);
    const { pid } = (await rt.state(d.id))!;
    process.kill(pid, 'SIGKILL');
    await waitFor(async () => (await rt.state(d.id))?.status !== 'created', { what: 'the killed container to stop' });
    await expect(rt.start(d.id)).rejects.toThrow(`container ${d.id} cannot be started`);
    await rt.remove(d.id);
    expect(leftovers(d.id, opts.runcRoot)).toEqual([]);
  });

  it('keeps containers running without the Runtime, and a new Runtime adopts them and sees exits', async () => {
    const old = new Runtime(opts);
    extra.push(old);
    const offOld = old.onExit(() => undefined);
    const long = cfg({ args: ['sleep', '60'] });
    const short = cfg({ args: ['sh', '-c', 'sleep 0.5; exit 7'] });
    for (const c of [long, short]) {
      await old.create(c);
      await old.start(c.id);
    }
    const pid = (await old.state(long.id))!.pid;
    offOld();
    await closeRuntimes(old); // the "daemon" goes away
    // the short one exits while nobody watches; conmon still records it
    await waitFor(() => existsSync(path.join(opts.root, 'exits', short.id)), { what: `conmon to record the exit of ${short.id}` });

    const fresh = new Runtime(opts);
    extra.push(fresh);
    const seen = new Map<string, number>();
    const off = fresh.onExit((id, code) => seen.set(id, code));
    const list = await fresh.list();
    expect(list).toContainEqual({ id: long.id, status: 'running', pid, exitCode: null });
    expect(list).toContainEqual({ id: short.id, status: 'stopped', pid: 0, exitCode: 7 });
    await waitFor(() => seen.get(short.id) === 7, { what: `the new runtime to report the exit of ${short.id}` });
    await fresh.stop(long.id, 'SIGTERM', 200); // sleep as pid 1 ignores SIGTERM
    await waitFor(() => seen.get(long.id) === 137, { what: `the new runtime to report the kill of ${long.id}` });
    off();
  });

  it('a closed Runtime (a stopping daemon) kills nothing, even a create it cut short, so the next one finds no false exit', async () => {
    const old = new Runtime(opts);
    extra.push(old);
    const made = cfg();
    await old.create(made);
    // cut short once the bundle is written, while conmon is being started
    const cut = cfg();
    const creating = old.create(cut).then(() => 'created', (e: Error) => e.message);
    await waitFor(() => existsSync(path.join(opts.root, 'bundles', cut.id, 'config.json')), { what: `the bundle of ${cut.id}` });
    await closeRuntimes(old);
    const outcome = await creating;
    await expect(old.remove(made.id)).rejects.toThrow(/runtime was closed/);

    const fresh = new Runtime(opts);
    extra.push(fresh);
    expect(await fresh.state(made.id)).toMatchObject({ status: 'created' });
    // whatever conmon got to, the container never ran, so it has no exit of its own
    expect(await fresh.state(cut.id), `create ended with: ${outcome}`).not.toMatchObject({ status: 'stopped' });
    // and the next daemon's remove waits out a conmon still creating it, so nothing is left
    await Promise.all([fresh.remove(cut.id), fresh.remove(made.id)]);
    expect(leftovers(cut.id, opts.runcRoot)).toEqual([]);
  });

  it('remove leaves no mount, cgroup, runc state or process, and is idempotent', async () => {
    const c = cfg({ memoryBytes: 32 * 1024 * 1024 });
    await rt.create(c);
    const { pid } = await rt.start(c.id);
    expect(pid).toBeGreaterThan(0);
    // its root is an overlay in its own mount namespace, none on the host
    expect(readFileSync(`/proc/${pid}/mounts`, 'utf8')).toMatch(/^overlay \/ overlay /m);
    expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(c.id);
    await rt.remove(c.id);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(leftovers(c.id, opts.runcRoot)).toEqual([]);
    expect(existsSync(path.join(opts.root, 'bundles', c.id))).toBe(false);
    expect(await rt.state(c.id)).toBeNull();
    await rt.remove(c.id);
    // removing a created-but-never-started container works too
    const d = cfg();
    await rt.create(d);
    expect(await rt.state(d.id)).toMatchObject({ status: 'created' });
    await rt.remove(d.id);
    expect(leftovers(d.id, opts.runcRoot)).toEqual([]);
  });

  it('mounts images whose layer paths would not fit in one overlay option string', async () => {
    const deep = path.join(base, 'store', 'x'.repeat(100));
    const layers = [layer];
    for (let i = 0; i < 60; i++) {
      const l = path.join(deep, `layer-${String(i).padStart(3, '0')}-${'y'.repeat(40)}`);
      mkdirSync(path.join(l, 'data'), { recursive: true });
      layers.push(l);
    }
    expect(layers.join(':').length).toBeGreaterThan(4096);
    const { code, lines } = await run({ layers, args: ['sh', '-c', 'ls -d /data && echo ok'] });
    expect(code).toBe(0);
    expect(lines.map((l) => l.text)).toEqual(['/data', 'ok']);
  });

  it('caps the log file at logSizeMax', async () => {
    const capped = new Runtime({ ...opts, logSizeMax: 16 * 1024 });
    extra.push(capped);
    const c = cfg({ args: ['sh', '-c', 'i=0; while [ $i -lt 2000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; echo last'] });
    const exited = new Promise<number>((resolve) => capped.onExit((id, code) => id === c.id && resolve(code)));
    await capped.create(c);
    await capped.start(c.id);
    expect(await exited).toBe(0);
    expect(statSync(c.logPath).size).toBeLessThanOrEqual(16 * 1024);
    expect(logLines(c.logPath).pop()?.text).toBe('last');
  });

  it('creates and starts containers concurrently', async () => {
    // how long this takes is measured by `npm run bench:spawn`, not here
    const cs = Array.from({ length: 12 }, () => cfg());
    await Promise.all(
      cs.map(async (c) => {
        await rt.create(c);
        await rt.start(c.id);
      }),
    );
    const states = await rt.list();
    expect(states.map((s) => s.id).sort()).toEqual(cs.map((c) => c.id).sort());
    expect(states.every((s) => s.status === 'running')).toBe(true);
  });
});
