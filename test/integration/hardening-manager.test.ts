import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import { newId } from '../../src/common/tasks';
import { connectEtcd } from '../../src/manager/etcd/client';
import { etcdTlsFiles } from '../../src/manager/manager-role';
import { MAX_REPLICAS, validateServiceSpec } from '../../src/manager/validate';
import { useE2eNode } from '../e2e/use-node';
import { IDLE } from '../helpers/workloads';
import { tasksOf } from '../e2e/observe';

// One real node for the whole file: real etcd, real runc under conmon, real cgroups.
const node = useE2eNode();
const CLI = path.join(__dirname, '..', '..', 'dist', 'src', 'cli', 'main.js');

const tasks = (service: string) => tasksOf(node, service);
const serviceNames = (): string[] => JSON.parse(node.ok('service', 'ls', '--format', 'json')).map((s: Service__Output) => s.spec!.name);
const SLEEPER = ['shoal-test:latest', ...IDLE];

const etcdDir = () => path.join(node.dataDir, 'etcd');

/** The node's etcd member, found from its pid file as TestNode.destroy finds it. */
function etcdMember(): { pid: number; url: string } {
  const pid = Number(fs.readFileSync(path.join(etcdDir(), 'etcd.pid'), 'utf8'));
  const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  const url = args.find((a) => a.startsWith('--listen-client-urls='))!.split('=')[1].split(',')[0];
  return { pid, url };
}

describe('manager hardening (real node)', () => {
  it('fails at once on logs of a service that does not exist, like ps', () => {
    for (const extra of [[], ['-n', '5']]) {
      const r = node.shoal('service', 'logs', ...extra, 'no-such-service');
      expect(r.code, extra.join(' ')).toBe(1);
      expect(r.stderr).toBe('Error: service no-such-service not found\n');
    }
    expect(node.shoal('service', 'ps', 'no-such-service').stderr).toBe('Error: service no-such-service not found\n');
  });

  it('refuses replica counts, sizes and limits that cannot run, naming the field and the rule, and stores nothing', () => {
    const bigEnv = Array.from({ length: 10 }, (_, i) => ['-e', `K${i}=${'v'.repeat(100_000)}`]).flat();
    const bad: [string[], RegExp][] = [
      [['--replicas', '1000000000'], new RegExp(`mode\\.replicated\\.replicas: must be at most ${MAX_REPLICAS}`)],
      [['--replicas', '2', ...bigEnv], /invalid service spec: spec: is 977\.\d KiB encoded; at most 128 KiB/],
      [['--limit-cpu', '1000'], /task_template\.resources\.limits\.nano_cpus: must be 0 \(no limit\) or from 0\.01 to 256 CPUs/],
      [['--limit-pids', '99999999999999'], /task_template\.resources\.limits\.pids: must be at most 4194304/],
      [['--hostname', 'h'.repeat(300)], /task_template\.container\.hostname: must be at most 64 bytes/],
    ];
    for (const [flags, message] of bad) {
      const r = node.shoal('service', 'create', '-d', '--name', 'bad', ...flags, ...SLEEPER);
      expect(r.code, flags[0]).toBe(1);
      expect(r.stderr, flags[0]).toMatch(message);
    }
    expect(serviceNames()).toEqual([]);
  });

  it('shows a task that ended under restart-condition none as Shutdown, and does not replace it', async () => {
    node.ok('service', 'create', '-d', '--name', 'oneshot', '--restart-condition', 'none', 'shoal-test:latest', 'sh', '-c', 'exit 3');
    await expect.poll(async () => (await tasks('oneshot')).map((x) => [x.status!.state, x.desired_state]), { timeout: 30_000 }).toEqual([['FAILED', 'SHUTDOWN']]);
    const [t] = await tasks('oneshot');
    // Give the orchestrator passes to make a replacement, were it going to.
    node.ok('service', 'create', '--name', 'witness', ...SLEEPER);
    await new Promise((r) => setTimeout(r, 2000));
    expect((await tasks('oneshot')).map((x) => x.id)).toEqual([t.id]);
    expect(node.ok('service', 'ps', 'oneshot')).toMatch(/oneshot\.1\s+shoal-test:latest\s+\S+\s+Shutdown\s+Failed/);
    node.ok('service', 'rm', 'oneshot', 'witness');
  });

  it('keeps serving and converging other services while a stored service is past the replica bound', async () => {
    // As if stored before the bound existed: written straight into etcd, around the API's validation.
    const spec = validateServiceSpec({ name: 'bomb', task_template: { container: { image: 'shoal-test:latest' } } });
    spec.mode = { mode: 'replicated', replicated: { replicas: 1_000_000_000 } };
    const id = newId();
    const ts = new Date().toISOString();
    const etcd = connectEtcd(etcdMember().url, etcdTlsFiles(etcdDir()));
    try {
      await etcd.put(`/shoal/v1/services/${id}`).value(JSON.stringify({ id, spec, spec_version: 1, created_at: ts, updated_at: ts, errors: [] }));
      await etcd.put('/shoal/v1/service-names/bomb').value(JSON.stringify({ id: 'bomb', service_id: id }));
    } finally {
      etcd.close();
    }
    expect(node.ok('info')).toMatch(/Leader: true/);
    node.ok('service', 'create', '--name', 'web', '--replicas', '2', ...SLEEPER);
    expect((await tasks('web')).filter((t) => t.status!.state === 'RUNNING')).toHaveLength(2);
    await expect
      .poll(() => node.shoal('service', 'ps', 'bomb').stderr, { timeout: 15_000 })
      .toMatch(`service bomb is not converging: orchestrator: its 1000000000 replicas are more than the ${MAX_REPLICAS} a service may have; scale it down`);
    expect((await tasks('bomb'))).toEqual([]);
    node.ok('service', 'rm', 'bomb');
  });

  it('creates a service once when etcd is killed just before, or says what is known', async () => {
    const { pid } = etcdMember();
    process.kill(pid, 'SIGKILL');
    const r = node.shoal('service', 'create', '-d', '--name', 'afterkill', ...SLEEPER);
    expect(r.stderr).not.toMatch(/internal error/);
    if (r.code === 0) expect(serviceNames().filter((n) => n === 'afterkill')).toHaveLength(1);
    else expect(r.stderr).toMatch(/^Error: the cluster store \(etcd\) is unavailable: .*(whether service "afterkill" was created is unknown: check with `shoal service ls`|service "afterkill" was not created)\n$/);
    await expect.poll(() => node.shoal('service', 'ls').code, { timeout: 30_000 }).toBe(0);
    node.shoal('service', 'rm', 'afterkill');
  });

  it('tells a user who may not use the socket that it is root-only and how to get access', () => {
    const r = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, CLI, '-H', node.socket, 'service', 'ls'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`Error: permission denied on ${node.socket}: the daemon's socket is root-only (like docker.sock); run shoal as root, e.g. with sudo\n`);
  });

  it('says that shoald went away when the daemon dies mid-command', async () => {
    node.ok('service', 'create', '--name', 'chatty', ...SLEEPER);
    const cli = spawn(process.execPath, [CLI, '-H', node.socket, 'service', 'logs', '-f', 'chatty'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    cli.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => cli.once('exit', r));
    try {
      await expect.poll(() => fs.existsSync(node.socket) && node.shoal('service', 'ls').code === 0).toBe(true);
      await new Promise((r) => setTimeout(r, 1000));
      await node.stop('SIGKILL');
      expect(await exited).toBe(1);
      expect(stderr).toMatch(/^Error: shoald went away during the command \(.+\); whatever it was changing may or may not have happened: check with `shoal service ls` once shoald is back\n$/);
    } finally {
      cli.kill('SIGKILL');
    }
  });
});
