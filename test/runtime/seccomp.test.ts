import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LogLine } from '../../src/gen/shoal/v1/LogLine';
import type { Runtime } from '../../src/worker/runtime/runtime';
import { readTaskLog } from '../../src/worker/task-logs';
import { config, newId, useRuntime, type RuntimeSetup } from './helpers';

const marker = `shoal-seccomp-${Math.random().toString(36).slice(2, 8)}`;
let setup: RuntimeSetup;
let rt: Runtime;
useRuntime(marker, (s) => {
  setup = s;
  rt = s.rt;
  // the helper's layer has a few applets; these tests need more of busybox
  for (const a of ['unshare', 'mount', 'grep', 'wget', 'ps', 'chroot', 'mkdir', 'ls', 'date', 'head', 'wc']) {
    fs.symlinkSync('busybox', path.join(s.layer, 'bin', a));
  }
});

/** Runs `script` in a container of its own; its exit code and output (both streams, in order). */
async function run(script: string, seccompProfile?: string): Promise<{ code: number; out: string }> {
  const c = config(newId(), setup.layer, setup.logs, { args: ['sh', '-c', script], seccompProfile });
  const exited = new Promise<number>((resolve) => {
    const off = rt.onExit((id, code) => {
      if (id !== c.id) return;
      off();
      resolve(code);
    });
  });
  await rt.create(c);
  await rt.start(c.id);
  const code = await exited;
  const lines: LogLine[] = [];
  await readTaskLog(c.logPath, c.id, { tail: -1, follow: false, signal: new AbortController().signal }, (l) => lines.push(...l));
  return { code, out: lines.map((l) => l.line).join('\n') };
}

const NESTED_MOUNT = 'unshare -Urm sh -c "mount -t tmpfs none /tmp && echo mounted-in-userns"';

describe('seccomp', () => {
  it('filters a default container: no new namespaces, no mounts', async () => {
    const r = await run(`grep Seccomp: /proc/self/status; ${NESTED_MOUNT}; echo "unshare=$?"; mount -t tmpfs none /tmp; echo "mount=$?"`);
    expect(r.out).toMatch(/^Seccomp:\s+2$/m);
    expect(r.out).not.toContain('mounted-in-userns');
    expect(r.out).toMatch(/unshare: unshare\(.*\): Operation not permitted/);
    expect(r.out).toMatch(/^unshare=1$/m);
    expect(r.out).toMatch(/^mount=(?!0)\d+$/m);
  });

  it('runs ordinary busybox commands under the default profile', async () => {
    const script = [
      'mkdir -p /www && echo hello-from-httpd > /www/index.html',
      'httpd -p 127.0.0.1:8080 -h /www',
      // httpd serves once it has gone to the background; ask until it answers
      'for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://127.0.0.1:8080/index.html 2>/dev/null && break; sleep 0.5; done',
      // not a count: httpd forks a child per connection, which may still be closing wget's
      'ps -o comm | grep -q httpd && echo ps-ok',
      'chroot / true && echo chroot-ok',
      'date +%Y | wc -c',
      'head -c 3 /dev/urandom | wc -c',
      'ls /proc/self/fd > /dev/null && echo ls-ok',
    ].join(' && ');
    const r = await run(script);
    expect(r.out.split('\n')).toEqual(['hello-from-httpd', 'ps-ok', 'chroot-ok', '5', '3', 'ls-ok']);
    expect(r.code).toBe(0);
  });

  it('applies no filter with seccomp=unconfined: the nested user namespace and its mount work', async () => {
    const r = await run(`grep Seccomp: /proc/self/status; ${NESTED_MOUNT}`, 'unconfined');
    expect(r.out).toMatch(/^Seccomp:\s+0$/m);
    expect(r.out).toContain('mounted-in-userns');
    expect(r.code).toBe(0);
  });

  it('applies a profile given in Docker’s format, resolving its archMap and includes', async () => {
    const profile = {
      defaultAction: 'SCMP_ACT_ALLOW',
      archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] }, { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] }],
      syscalls: [
        { names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 },
        // not applied: the container does not hold CAP_SYS_ADMIN
        { names: ['uname'], action: 'SCMP_ACT_ERRNO', includes: { caps: ['CAP_SYS_ADMIN'] } },
      ],
    };
    const r = await run('mkdir /made; echo "mkdir=$?"; uname -s', JSON.stringify(profile));
    expect(r.out).toMatch(/Permission denied/);
    expect(r.out).toMatch(/^mkdir=1$/m);
    expect(r.out).toMatch(/^Linux$/m);
  });
});
