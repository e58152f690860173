import { execSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/worker/runtime/runtime';
import { IDLE } from '../helpers/workloads';
import { config, newId, testMarker, useRuntime } from './helpers';

const marker = testMarker();
let layer: string;
let logs: string;
let opts: { root: string };
let rt: Runtime;

useRuntime(marker, (s) => ({ layer, logs, opts, rt } = s));

/** A running container of the test image, idling until stopped. */
async function running(over: Parameters<typeof config>[3] = {}): Promise<string> {
  const c = config(newId(), layer, logs, { args: IDLE, ...over });
  await rt.create(c);
  await rt.start(c.id);
  return c.id;
}

describe('Runtime.exec (runc exec, for health checks)', () => {
  it('runs a command in the container as its process runs: namespaces, user, env, working dir', async () => {
    const id = await running({ hostname: 'probe-host', env: ['MODE=check'], cwd: '/tmp', user: 'nobody' });
    const r = await rt.exec(id, ['sh', '-c', 'hostname; echo "$MODE"; pwd; id -u; cat /proc/1/cmdline | tr "\\0" " "; echo oops >&2; exit 4'], 10_000);
    expect(r).toEqual({ exitCode: 4, output: `probe-host\ncheck\n/tmp\n65534\n${IDLE.join(' ')}\noops`, timedOut: false });
    expect((await rt.state(id))!.status).toBe('running');
  });

  it('kills a command that runs past its timeout, even one that traps SIGTERM, and leaves the container running', async () => {
    const id = await running();
    const r = await rt.exec(id, ['sh', '-c', 'trap "" TERM; sleep 1000 & wait'], 300);
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).not.toBe(0);
    expect((await rt.state(id))!.status).toBe('running');
    // the child it started went with it (the container's own idle sleep stays)
    const ps = await rt.exec(id, ['/bin/busybox', 'ps', '-o', 'args'], 10_000);
    expect(ps.output.split('\n').map((l) => l.trim())).not.toContain('sleep 1000');
    expect(ps.output).toContain('sleep 1000000');
    // runc's pid file for the exec is gone with it
    expect(readdirSync(path.join(opts.root, 'bundles', id)).filter((f) => f.startsWith('exec-'))).toEqual([]);
  });

  it('times out, as under Docker, a command that left a process holding its output open, and leaves no runc behind', async () => {
    const id = await running();
    const r = await rt.exec(id, ['sh', '-c', 'sleep 1000 & echo left'], 500);
    expect(r.timedOut).toBe(true);
    expect(r.output).toMatch(/^left\n/);
    expect(execSync('ps -eo args').toString().split('\n').filter((l) => l.includes('runc') && l.includes(' exec ') && l.includes(id))).toEqual([]);
  });

  it('says why a command cannot run, with runc’s error, as a failure', async () => {
    const id = await running();
    const r = await rt.exec(id, ['/no/such/probe'], 10_000);
    expect(r.exitCode).not.toBe(0);
    expect(r.timedOut).toBe(false);
    expect(r.output).toMatch(/no such file or directory/);
  });
});
