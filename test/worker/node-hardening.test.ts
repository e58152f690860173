import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useE2eNode } from '../e2e/use-node';
import { tasksOf, waitFor } from '../e2e/observe';

// One real node: etcd, runc under conmon, cgroups; the CLI as a user runs it.
const node = useE2eNode();
const CLI = path.resolve(__dirname, '../../dist/src/cli/main.js');

const tasks = (service: string) => tasksOf(node, service);

/** `shoal service logs` with both streams into one pipe, as `2>&1` in a terminal would. */
function logs(service: string): string {
  const r = spawnSync('sh', ['-c', `"${process.execPath}" "${CLI}" -H "${node.socket}" service logs ${service} 2>&1`], { encoding: 'utf8' });
  return r.stdout;
}

/** Runs `script` once as a service and returns its log, as the CLI prints it. */
async function runOnce(name: string, script: string, ...flags: string[]): Promise<string> {
  node.shoal('service', 'create', '-d', '--name', name, '--restart-condition', 'none', ...flags, 'shoal-test:latest', 'sh', '-c', script);
  await waitFor(`${name} to finish`, async () => (await tasks(name)).some((t) => ['COMPLETE', 'FAILED'].includes(t.status!.state)));
  return logs(name);
}

describe('a node, as the CLI shows it', () => {
  it('says a task was killed for lack of memory, and what the limit was', async () => {
    node.ok('service', 'create', '-d', '--name', 'hog', '--limit-memory', '32m', '--restart-condition', 'none', 'shoal-test:latest', 'tail', '/dev/zero');
    const t = await waitFor('the task to fail', async () => (await tasks('hog')).find((x) => x.status!.state === 'FAILED'));
    expect(t.status!.err).toBe('killed: out of memory (limit 32 MiB)');
    expect(node.ok('service', 'ps', 'hog')).toContain('killed: out of memory (limit 32 MiB)');
  });

  it('ends every log line with a newline, whichever stream it came from, the last one too', async () => {
    const out = await runOnce('streams', 'echo first; echo to-stderr >&2; printf no-newline-at-exit');
    const lines = out.split('\n');
    expect(lines.pop()).toBe('');
    const prefix = /^streams\.1\.[a-z0-9]+@\S+ +\| /;
    for (const l of lines) expect(l).toMatch(prefix);
    // conmon reads the two streams from two pipes, so their order is not known; their lines are
    expect(lines.map((l) => l.replace(prefix, '')).sort()).toEqual(['first', 'no-newline-at-exit', 'to-stderr']);
  });

  it('runs tasks under the default seccomp profile, or none with --security-opt seccomp=unconfined', async () => {
    const probe = 'grep Seccomp: /proc/self/status; unshare -Urm sh -c "mount -t tmpfs none /tmp && echo mounted-in-userns"';
    const confined = await runOnce('confined', probe);
    expect(confined).toMatch(/Seccomp:\s+2/);
    expect(confined).toMatch(/Operation not permitted/);
    expect(confined).not.toContain('mounted-in-userns');
    const free = await runOnce('unconfined', probe, '--security-opt', 'seccomp=unconfined');
    expect(free).toMatch(/Seccomp:\s+0/);
    expect(free).toContain('mounted-in-userns');
  });

  it('sends a profile FILE with the service, and update can change it', async () => {
    const file = path.join(node.dir, 'no-mkdir.json');
    fs.writeFileSync(file, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] }, null, 2));
    expect(await runOnce('custom', 'mkdir /x && echo made', '--security-opt', `seccomp=${file}`)).toMatch(/Operation not permitted/);
    const spec = JSON.parse(node.ok('service', 'inspect', 'custom'))[0].spec;
    expect(JSON.parse(spec.task_template.container.seccomp_profile).syscalls[0].names).toEqual(['mkdir', 'mkdirat']);
    node.ok('service', 'update', '-d', '--security-opt', 'seccomp=default', 'custom');
    expect(JSON.parse(node.ok('service', 'inspect', 'custom'))[0].spec.task_template.container.seccomp_profile).toBe('');
  });

  it('refuses a profile that is not one, naming the field, and stores nothing', () => {
    const bad = path.join(node.dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'ALLOW' }] }));
    const r = node.shoal('service', 'create', '--name', 'bad', '--security-opt', `seccomp=${bad}`, 'shoal-test:latest', 'true');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/task_template\.container\.seccomp_profile\.syscalls\[0\]\.action: must be one of SCMP_ACT_ALLOW/);
    expect(node.shoal('service', 'create', '--name', 'bad', '--security-opt', 'apparmor=x', 'shoal-test:latest', 'true').stderr).toMatch(/only seccomp=unconfined, seccomp=default or seccomp=FILE/);
    expect(node.shoal('service', 'create', '--name', 'bad', '--security-opt', 'seccomp=/nonexistent.json', 'shoal-test:latest', 'true').stderr).toMatch(/cannot read the seccomp profile/);
    expect(node.ok('service', 'ls', '-q')).not.toMatch(/bad/);
  });
});
