import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Spawner, spawnerEntry } from '../../src/worker/runtime/exec';
import { Runtime, type RuntimeOptions } from '../../src/worker/runtime/runtime';
import { waitFor } from '../helpers/wait';
import { alive, closeRuntimes, config, leftovers, newId, testMarker, useRuntime } from './helpers';

/** Processes whose parent is `ppid`, as "pid args" lines. */
function childrenOf(ppid: number): string[] {
  try {
    return execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(ppid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return []; // ps exits 1 when nothing matches
  }
}

describe('process spawner', () => {
  const spawners: Spawner[] = [];
  const helpers: ChildProcess[] = [];
  const pids = new Set<number>();
  const sp = () => {
    const s = new Spawner();
    spawners.push(s);
    return s;
  };
  const track = (s: Spawner) => s.pid !== undefined && pids.add(s.pid);
  // Every spawner and helper process a test started ends with it, passed or failed.
  afterEach(async () => {
    for (const s of spawners.splice(0)) {
      track(s);
      s.close();
    }
    for (const h of helpers.splice(0)) if (h.exitCode === null && h.signalCode === null) h.kill('SIGKILL');
    for (const pid of pids) await waitFor(() => !alive(pid), { what: `process ${pid} of this test to end` });
    pids.clear();
  });

  it('runs commands in its own small process, not in this one', async () => {
    const s = sp();
    expect(s.pid).toBeUndefined(); // started lazily
    const r = await s.exec('sh', ['-c', 'echo out; echo err >&2; echo $PPID; exit 3'], { cwd: '/tmp' });
    expect(r.code).toBe(3);
    expect(r.stderr).toBe('err\n');
    const [out, ppid] = r.stdout.trim().split('\n');
    expect(out).toBe('out');
    expect(Number(ppid)).toBe(s.pid);
    expect(Number(ppid)).not.toBe(process.pid);
    expect((await s.exec('pwd', [], { cwd: '/tmp' })).stdout).toBe('/tmp\n');
  });

  it('reports a missing command like spawn does, and a timeout', async () => {
    const s = sp();
    await expect(s.exec('/no/such/cmd', [])).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining('ENOENT') });
    const r = await s.exec('sleep', ['5'], { timeoutMs: 100 });
    expect(r).toMatchObject({ code: 128, stderr: 'killed by SIGTERM' });
  });

  it('fails requests in flight when it dies, only once the command it had started has ended, and starts again', async () => {
    const s = sp();
    await s.exec('true', []);
    const first = s.pid!;
    pids.add(first);
    const inFlight = s.exec('sleep', ['1']);
    const sleeper = await waitFor(() => childrenOf(first).find((l) => l.includes('sleep 1')), { what: `the spawner ${first} to run sleep 1` });
    const sleepPid = Number(sleeper.trim().split(/\s+/)[0]);
    // Whether the orphaned command was still alive at the moment the request failed.
    let orphanAliveAtRejection: boolean | undefined;
    const rejected = inFlight.then(
      () => {
        throw new Error('the request did not fail');
      },
      (err: Error) => {
        orphanAliveAtRejection = alive(sleepPid);
        return err;
      },
    );
    process.kill(first, 'SIGKILL');
    expect((await rejected).message).toBe(`the process spawner (pid ${first}) was killed by SIGKILL while running sleep 1`);
    expect(orphanAliveAtRejection).toBe(false);
    expect((await s.exec('echo', ['again'])).stdout).toBe('again\n');
    expect(s.pid).toBeGreaterThan(0);
    expect(s.pid).not.toBe(first);
  });

  it('ends on close, and fails later requests', async () => {
    const s = sp();
    await s.exec('true', []);
    const pid = s.pid!;
    pids.add(pid);
    s.close();
    await waitFor(() => !alive(pid), { what: `the spawner ${pid} to end on close` });
    await expect(s.exec('true', [])).rejects.toThrow('the runtime was closed');
  });

  it('dies with its parent, even on kill -9', async () => {
    // a stand-in for shoald: forks the spawner, has it run one command, prints its pid and waits
    const parent = spawn(
      process.execPath,
      [
        '-e',
        `const c = require('child_process').fork(${JSON.stringify(spawnerEntry())}, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
         c.on('message', (m) => console.log(JSON.stringify({ pid: c.pid, m })));
         c.send({ id: 1, kind: 'exec', cmd: 'true', args: [], timeoutMs: 5000 });
         setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    helpers.push(parent);
    const line = await new Promise<string>((resolve) => parent.stdout.once('data', (b: Buffer) => resolve(b.toString())));
    const { pid, m } = JSON.parse(line) as { pid: number; m: unknown };
    pids.add(pid);
    expect(m).toEqual({ id: 1, code: 0, stdout: '', stderr: '' });
    expect(alive(pid)).toBe(true);
    parent.kill('SIGKILL');
    await waitFor(() => !alive(pid), { what: `the spawner ${pid} to die with its parent` });
  });
});

describe('Runtime with its process spawner', () => {
  const marker = testMarker();
  let base: string;
  let layer: string;
  let opts: RuntimeOptions;
  let logs: string;
  let rt: Runtime;
  const cfg = () => config(newId(), layer, logs);

  useRuntime(marker, (s) => ({ base, layer, logs, opts, rt } = s));

  it('forks runc and conmon from the spawner, and containers outlive it', async () => {
    const c = cfg();
    await rt.create(c);
    const spawnerPid = rt.spawnerPid!;
    expect(spawnerPid).toBeGreaterThan(0);
    const { pid } = await rt.start(c.id);
    // neither this process nor the spawner is conmon's parent: it is in its own session
    expect(childrenOf(process.pid).some((l) => l.includes('conmon'))).toBe(false);
    expect(childrenOf(spawnerPid).some((l) => l.includes('conmon'))).toBe(false);
    process.kill(spawnerPid, 'SIGKILL');
    await waitFor(() => rt.spawnerPid === undefined, { what: 'the runtime to see its spawner die' });
    expect(alive(pid)).toBe(true);
    expect(await rt.state(c.id)).toMatchObject({ status: 'running', pid });
  });

  it('starts the spawner again after it was killed, and leaves nothing behind', async () => {
    const a = cfg();
    await rt.create(a);
    await rt.start(a.id);
    const first = rt.spawnerPid!;
    process.kill(first, 'SIGKILL');
    await waitFor(() => rt.spawnerPid === undefined, { what: 'the runtime to see its spawner die' });
    const b = cfg();
    await rt.create(b);
    await rt.start(b.id);
    expect(rt.spawnerPid).toBeGreaterThan(0);
    expect(rt.spawnerPid).not.toBe(first);
    expect((await rt.list()).map((s) => s.status)).toEqual(['running', 'running']);
    await rt.remove(a.id);
    await rt.remove(b.id);
    expect(leftovers(a.id, opts.runcRoot)).toEqual([]);
    expect(leftovers(b.id, opts.runcRoot)).toEqual([]);
  });

  /** A runtime whose conmon or runc is a script that sleeps first, so that the test can kill the spawner meanwhile. */
  function slowRuntime(which: 'conmon' | 'runc'): Runtime {
    const script = path.join(base, `slow-${which}`);
    const real = which === 'conmon' ? '/usr/bin/conmon' : '/usr/sbin/runc';
    const when = which === 'conmon' ? 'true' : 'for a in "$@"; do [ "$a" = delete ] && exit 0; done; exit 1';
    writeFileSync(script, `#!/bin/sh\nif (${when}) >/dev/null; then sleep 0.5; fi\nexec ${real} "$@"\n`, { mode: 0o755 });
    const r = new Runtime({ ...opts, [which === 'conmon' ? 'conmonPath' : 'runcPath']: script });
    extra.push(r);
    return r;
  }
  const extra: Runtime[] = [];
  afterEach(() => closeRuntimes(...extra.splice(0)));

  it('fails a create whose conmon was starting when the spawner died, and leaves nothing', async () => {
    const slow = slowRuntime('conmon');
    const c = cfg();
    const created = slow.create(c);
    const failed = expect(created).rejects.toThrow(/^the process spawner \(pid \d+\) was killed by SIGKILL while running conmon$/);
    await waitFor(() => execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).includes(`slow-conmon --api-version 1 -c ${c.id}`), {
      what: `slow-conmon to run for ${c.id}`,
    });
    process.kill(slow.spawnerPid!, 'SIGKILL');
    await failed;
    expect(await slow.state(c.id)).toBeNull();
    expect(existsSync(path.join(opts.root, 'bundles', c.id))).toBe(false);
    // leftovers() includes every process naming the container: none is left that could make it later
    expect(leftovers(c.id, opts.runcRoot)).toEqual([]);
  });

  it('fails a request only once the command the dead spawner had started has finished', async () => {
    const slow = slowRuntime('runc');
    const c = cfg();
    await slow.create(c);
    await slow.start(c.id);
    const spawnerPid = slow.spawnerPid!;
    const removed = slow.remove(c.id);
    const failed = expect(removed).rejects.toThrow(new RegExp(`^the process spawner \\(pid ${spawnerPid}\\) was killed by SIGKILL while running slow-runc .* delete --force ${c.id}$`));
    await waitFor(() => childrenOf(spawnerPid).some((l) => l.includes('slow-runc')), { what: `the spawner ${spawnerPid} to run slow-runc` });
    process.kill(spawnerPid, 'SIGKILL');
    await failed;
    // the orphaned `runc delete` was let finish before the error came back
    expect(existsSync(path.join(opts.runcRoot, c.id))).toBe(false);
    expect(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })).not.toContain(`delete --force ${c.id}`);
    await slow.remove(c.id);
    expect(leftovers(c.id, opts.runcRoot)).toEqual([]);
  });

  it('survives its spawner dying amid concurrent creates: every error says so, and nothing is left', async () => {
    // conmon starts late, so the spawner is sure to have commands in flight when it is killed
    const slow = slowRuntime('conmon');
    await slow.create(cfg()); // the spawner is up
    const pid = slow.spawnerPid!;
    const cs = Array.from({ length: 8 }, () => cfg());
    const results = Promise.allSettled(
      cs.map(async (c) => {
        await slow.create(c);
        await slow.start(c.id);
      }),
    );
    await waitFor(() => childrenOf(pid).some((l) => l.includes('slow-conmon')), { what: `the spawner ${pid} to run slow-conmon` });
    process.kill(pid, 'SIGKILL');
    const settled = await results;
    // those in flight fail, saying why; requests it had not read yet go to a new spawner
    const rejected = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(rejected.length).toBeGreaterThan(0);
    for (const r of rejected) expect(String(r.reason.message)).toMatch(new RegExp(`^the process spawner \\(pid ${pid}\\) was killed by SIGKILL while running`));
    const made = cs.filter((_, i) => settled[i].status === 'fulfilled');
    for (const c of made) expect(await slow.state(c.id)).toMatchObject({ status: 'running' });
    await slow.removeAll();
    expect(await slow.list()).toEqual([]);
    for (const c of cs) {
      expect(leftovers(c.id, opts.runcRoot)).toEqual([]);
      expect(existsSync(path.join(opts.root, 'bundles', c.id))).toBe(false);
    }
  });

  it('keeps runc\'s own message when the command does not exist', async () => {
    const c = { ...cfg(), args: ['nosuchcmd'] };
    await expect(rt.create(c)).rejects.toThrow('exec: "nosuchcmd": executable file not found in $PATH');
    expect(leftovers(c.id, opts.runcRoot)).toEqual([]);
  });
});
