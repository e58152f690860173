import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { buildTestImage, TestNode } from '../helpers/test-node';

// One real node for the whole file: real etcd, real runc under conmon, real cgroups.
const node = new TestNode();
let image: string;

const tasks = (service: string): Task__Output[] => JSON.parse(node.ok('service', 'ps', service, '--format', 'json'));
const running = (service: string) => tasks(service).filter((t) => t.desired_state === 'RUNNING' && t.status!.state === 'RUNNING');
const runcIds = () => node.containerIds();
const cgroupFile = (controller: string, taskId: string, file: string) =>
  fs.readFileSync(path.join('/sys/fs/cgroup', controller, node.cgroupParent, taskId, file), 'utf8').trim();

// A workload that logs, then exits promptly on SIGTERM (as PID 1 it must trap it itself).
const WORKLOAD = ['sh', '-c', 'echo "$GREETING from $(hostname)"; trap "exit 0" TERM; while true; do sleep 0.2; done'];

beforeAll(async () => {
  image = buildTestImage(node.dir);
  await node.start();
});

afterAll(async () => {
  await node.destroy();
});

describe('single node', () => {
  it('tells the user how to start a daemon when none is running', () => {
    const r = node.shoal('-H', path.join(node.dir, 'nope.sock'), 'service', 'ls');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/is shoald running\?/);
  });

  it('asks for init before anything cluster-wide, then initialises once', () => {
    const before = node.shoal('service', 'ls');
    expect(before.code).not.toBe(0);
    expect(before.stderr).toMatch(/shoal init/);
    expect(node.ok('init')).toMatch(/Cluster initialized/);
    expect(node.shoal('init').stderr).toMatch(/already part of a cluster/);
    const ls = node.ok('node', 'ls');
    expect(ls).toMatch(/HOSTNAME\s+STATUS\s+AVAILABILITY\s+MANAGER STATUS/);
    expect(ls).toMatch(/Ready\s+Active\s+Leader/);
  });

  it('loads an image and refuses a truncated one, leaving the store as it was', () => {
    expect(node.ok('image', 'load', image)).toMatch(/Loaded image: shoal-test:latest/);
    const before = node.ok('image', 'ls', '--format', 'json');
    const truncated = path.join(node.dir, 'truncated.tar');
    const bytes = fs.readFileSync(buildTestImage(node.dir, 'oci', 'other:1'));
    fs.writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const r = node.shoal('image', 'load', truncated);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^Error: .*(truncated|corrupt|unexpected end)/im);
    expect(node.ok('image', 'ls', '--format', 'json')).toBe(before);
  });

  it('rejects bad specs with the field and the rule, storing nothing', () => {
    const bad: [string[], RegExp][] = [
      [['--name', 'x', '--replicas=-1'], /replicas.*non-negative integer/],
      [['--name', 'bad name!'], /name: must start with a letter or digit/],
      [['--name', 'x'.repeat(70)], /name.*63/],
      [['--name', 'x', '--limit-memory', '12x'], /--limit-memory.*12x/],
      [['--name', 'x', '--limit-cpu', 'lots'], /--limit-cpu/],
      [['--name', 'x', '--env', '=oops'], /env\[0\]/],
      [['--name', 'x', '--restart-condition', 'sometimes'], /restart_policy.condition/],
    ];
    for (const [flags, message] of bad) {
      const r = node.shoal('service', 'create', '-d', ...flags, 'shoal-test:latest');
      expect(r.code, flags.join(' ')).not.toBe(0);
      expect(r.stderr, flags.join(' ')).toMatch(message);
    }
    const empty = node.shoal('service', 'create', '-d', '--name', 'x', '');
    expect(empty.stderr).toMatch(/image/);
    expect(JSON.parse(node.ok('service', 'ls', '--format', 'json'))).toEqual([]);
    expect(node.shoal('service', 'scale', 'ghost=2').stderr).toMatch(/service ghost not found/);
    expect(node.shoal('service', 'rm', 'ghost').stderr).toMatch(/service ghost not found/);
    expect(node.shoal('service', 'update', '--replicas', '2', 'ghost').stderr).toMatch(/service ghost not found/);
  });

  it('runs replicas as real containers with limits, env, hostname and logs', async () => {
    const out = node.ok(
      'service', 'create', '--name', 'web', '--replicas', '3', '--limit-memory', '64m', '--limit-pids', '100', '--limit-cpu', '0.5',
      '--env', 'GREETING=hi', '--stop-grace-period', '2s', 'shoal-test:latest', ...WORKLOAD,
    );
    expect(out).toMatch(/^[a-z0-9]{25}$/m);
    expect(node.ok('service', 'ls')).toMatch(/web\s+replicated\s+3\/3\s+shoal-test:latest/);
    expect(node.shoal('service', 'create', '-d', '--name', 'web', 'shoal-test:latest').stderr).toMatch(/already exists/);
    const live = running('web');
    expect(live).toHaveLength(3);
    expect(new Set(runcIds())).toEqual(new Set(live.map((t) => t.id)));
    for (const t of live) {
      expect(cgroupFile('memory', t.id, 'memory.limit_in_bytes')).toBe(String(64 * 1024 * 1024));
      expect(cgroupFile('cpu', t.id, 'cpu.cfs_quota_us')).toBe('50000');
      expect(cgroupFile('pids', t.id, 'pids.max')).toBe('100');
    }
    await expect.poll(() => node.ok('service', 'logs', 'web'), { timeout: 10_000 }).toMatch(/web\.1\.[a-z0-9]+\s+\| hi from [a-z0-9]{12}/);
    expect(node.ok('service', 'logs', 'web').match(/hi from/g)).toHaveLength(3);
  });

  it('scales up, down to zero and back, with no container left over', () => {
    node.ok('service', 'scale', 'web=10');
    expect(running('web')).toHaveLength(10);
    expect(runcIds()).toHaveLength(10);
    node.ok('service', 'scale', 'web=0');
    expect(running('web')).toHaveLength(0);
    expect(runcIds()).toHaveLength(0);
    node.ok('service', 'scale', 'web=2');
    expect(running('web')).toHaveLength(2);
    expect(node.ok('service', 'ls', '-q')).toMatch(/^[a-z0-9]{25}\n$/);
  });

  it('updates a service by replacing its tasks, keeping history in ps', async () => {
    node.ok('service', 'update', '--env-add', 'GREETING=bonjour', 'web');
    const live = running('web');
    expect(live).toHaveLength(2);
    expect(live.every((t) => t.spec!.container!.env.includes('GREETING=bonjour'))).toBe(true);
    expect(tasks('web').filter((t) => t.desired_state === 'SHUTDOWN').length).toBeGreaterThanOrEqual(2);
    expect(node.ok('service', 'ps', 'web')).toMatch(/\\_ web\.1/);
    await expect.poll(() => node.ok('service', 'logs', 'web'), { timeout: 10_000 }).toMatch(/bonjour from/);
    expect(JSON.parse(node.ok('service', 'inspect', 'web'))[0].spec.task_template.container.env).toContain('GREETING=bonjour');
  });

  it('replaces exited containers per the restart policy and stops after max attempts', () => {
    const r = node.shoal(
      'service', 'create', '--name', 'crash', '--restart-condition', 'on-failure', '--restart-max-attempts', '2',
      '--restart-delay', '100ms', 'shoal-test:latest', 'sh', '-c', 'exit 3',
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/not converging.*non-zero exit \(3\)/);
    const history = tasks('crash');
    expect(history).toHaveLength(3);
    expect(history.every((t) => t.status!.state === 'FAILED' && t.status!.container!.exit_code === 3)).toBe(true);
    expect(node.ok('service', 'ps', 'crash')).toMatch(/Failed .*"task: non-zero exit \(3\)"/);
    node.ok('service', 'rm', 'crash');
  });

  it('rejects a task whose image is missing and fails one whose command does not exist', async () => {
    node.ok('service', 'create', '-d', '--name', 'noimage', '--restart-delay', '100ms', 'nosuch:image');
    await expect.poll(() => tasks('noimage').map((t) => t.status!.err), { timeout: 15_000 }).toContain('No such image: nosuch:image');
    expect(node.ok('service', 'ps', 'noimage')).toMatch(/Rejected .*No such image: nosuch:image/);
    const waited = node.shoal('service', 'create', '--name', 'nocmd', '--restart-delay', '100ms', 'shoal-test:latest', 'no-such-command');
    expect(waited.code).not.toBe(0);
    expect(waited.stderr).toMatch(/no-such-command.*(not found|no such file)/i);
    expect(tasks('nocmd').some((t) => t.status!.state === 'FAILED' && /executable file not found/.test(t.status!.err))).toBe(true);
    node.ok('service', 'rm', 'noimage', 'nocmd');
  });

  it('keeps containers through a kill -9 of shoald, re-adopts them and records exits while down', async () => {
    node.ok('service', 'create', '--name', 'oneshot', '--restart-condition', 'none', 'shoal-test:latest', 'sh', '-c', 'sleep 2; exit 7');
    const before = running('web').map((t) => t.id).sort();
    const containers = runcIds().sort();
    await node.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, 3000));
    expect(runcIds().sort()).toEqual(containers);
    await node.start();
    await expect.poll(() => tasks('oneshot')[0].status!.state, { timeout: 15_000 }).toBe('FAILED');
    expect(tasks('oneshot')[0].status!.container!.exit_code).toBe(7);
    expect(running('web').map((t) => t.id).sort()).toEqual(before);
    expect(tasks('web').filter((t) => t.desired_state === 'RUNNING')).toHaveLength(2);
    node.ok('service', 'rm', 'oneshot');
  });

  it('refuses to remove an image that containers use', () => {
    const id = JSON.parse(node.ok('image', 'ls', '--format', 'json')).find((i: { tags: string[] }) => i.tags.includes('shoal-test:latest')).id;
    const r = node.shoal('image', 'rm', id);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/in use/);
  });

  it('removes a service and all its containers', async () => {
    node.ok('service', 'rm', 'web');
    await expect.poll(() => runcIds(), { timeout: 15_000 }).toEqual([]);
    expect(node.shoal('service', 'ps', 'web').stderr).toMatch(/service web not found/);
    expect(node.ok('service', 'ls', '-q')).toBe('');
    expect(node.ok('image', 'rm', 'shoal-test:latest')).toMatch(/Deleted: sha256:/);
  });
});
