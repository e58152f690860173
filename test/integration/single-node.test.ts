import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isTerminal, wantsRunning } from '../../src/common/tasks';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import { cgroupLimitsOf, cpuWeightOfShares } from '../helpers/cgroup-limits';
import { buildTestImage, NODE_TEST_TIMEOUT_MS, NODE_WAIT_MS, TestNode } from '../helpers/test-node';
import { waitFor } from '../helpers/wait';
import { closeApi, runningOf, tasksOf } from '../e2e/observe';
import { thenIdle } from '../helpers/workloads';

// Real nodes: real etcd, real runc under conmon, real cgroups. Every test makes its own services,
// and afterEach removes them and checks that no container is left, so tests run in any order.

// A workload that logs, then exits promptly on SIGTERM (as PID 1 it must trap it itself).
const WORKLOAD = thenIdle('echo "$GREETING from $(hostname)"');

describe('a node before init', { timeout: NODE_TEST_TIMEOUT_MS }, () => {
  const fresh = new TestNode();

  beforeAll(() => fresh.start(), NODE_TEST_TIMEOUT_MS);
  afterAll(() => fresh.destroy(), NODE_TEST_TIMEOUT_MS);

  it('tells the user how to start a daemon when none is running', () => {
    expect(fresh.fails('-H', path.join(fresh.dir, 'nope.sock'), 'service', 'ls')).toMatch(/is shoald running\?/);
  });

  it('asks for init before anything cluster-wide, then initialises once', () => {
    expect(fresh.fails('service', 'ls')).toMatch(/shoal init/);
    expect(fresh.ok('init')).toMatch(/Cluster initialized/);
    expect(fresh.fails('init')).toMatch(/already part of a cluster/);
    const ls = fresh.ok('node', 'ls');
    expect(ls).toMatch(/HOSTNAME\s+STATUS\s+AVAILABILITY\s+MANAGER STATUS/);
    expect(ls).toMatch(/Ready\s+Active\s+Leader/);
  });
});

describe('single node', { timeout: NODE_TEST_TIMEOUT_MS }, () => {
  const node = new TestNode();
  let image: string;

  const tasks = (service: string) => tasksOf(node, service);
  const running = (service: string) => runningOf(node, service);
  const inspect = (service: string): Service__Output => JSON.parse(node.ok('service', 'inspect', service))[0];
  const runcIds = () => node.containerIds();
  /** runc's view of one container: its status, or null once runc no longer knows it. */
  const runcStatus = (id: string): string | null => {
    const r = spawnSync('/usr/sbin/runc', ['--root', node.runcRoot, 'state', id], { encoding: 'utf8' });
    if (r.status !== 0) {
      if (/does not exist|not exist/.test(r.stderr)) return null;
      throw new Error(`runc state ${id} failed: ${r.stderr}`);
    }
    return JSON.parse(r.stdout).status;
  };

  beforeAll(async () => {
    image = buildTestImage(node.dir);
    await node.start();
    node.ok('init');
    node.ok('image', 'load', image);
  }, NODE_TEST_TIMEOUT_MS);
  afterEach(() => node.empty(), NODE_TEST_TIMEOUT_MS);
  afterAll(() => {
    closeApi(node);
    return node.destroy();
  }, NODE_TEST_TIMEOUT_MS);

  it('loads an image again, and refuses a truncated one, leaving the store as it was', () => {
    expect(node.ok('image', 'load', image)).toMatch(/Loaded image: shoal-test:latest/);
    const before = node.ok('image', 'ls', '--format', 'json');
    const truncated = path.join(node.dir, 'truncated.tar');
    const bytes = fs.readFileSync(buildTestImage(node.dir, 'oci', 'other:1'));
    fs.writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    expect(node.fails('image', 'load', truncated)).toMatch(/^Error: .*(truncated|corrupt|unexpected end)/im);
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
    expect(node.fails('service', 'create', '-d', '--name', 'x', '')).toMatch(/image/);
    expect(JSON.parse(node.ok('service', 'ls', '--format', 'json'))).toEqual([]);
    expect(node.fails('service', 'scale', 'ghost=2')).toMatch(/service ghost not found/);
    expect(node.fails('service', 'rm', 'ghost')).toMatch(/service ghost not found/);
    expect(node.fails('service', 'update', '--replicas', '2', 'ghost')).toMatch(/service ghost not found/);
  });

  it('runs replicas as real containers with limits, env, hostname and logs', async () => {
    const out = node.ok(
      'service', 'create', '--name', 'web', '--replicas', '3', '--limit-memory', '64m', '--limit-pids', '100', '--limit-cpu', '0.5',
      '--env', 'GREETING=hi', '--stop-grace-period', '2s', 'shoal-test:latest', ...WORKLOAD,
    );
    expect(out).toMatch(/^[a-z0-9]{25}$/m);
    expect(node.ok('service', 'ls')).toMatch(/web\s+replicated\s+3\/3\s+shoal-test:latest/);
    expect(inspect('web').spec!.task_template!.container!.stop_grace_period_ms).toBe(2000);
    expect(node.fails('service', 'create', '-d', '--name', 'web', 'shoal-test:latest')).toMatch(/already exists/);
    const live = (await running('web'));
    expect(live).toHaveLength(3);
    expect(new Set(runcIds())).toEqual(new Set(live.map((t) => t.id)));
    for (const t of live) {
      // Found through the container's own /proc/<pid>/cgroup: v1 or v2, wherever runc put it.
      const limits = await cgroupLimitsOf(t.status!.container!.pid);
      expect(limits).toMatchObject({ memoryBytes: 64 * 1024 * 1024, cpuQuotaUs: 50_000, cpuPeriodUs: 100_000, cpuWeight: cpuWeightOfShares(512), pids: 100 });
      if (limits.cpuShares !== null) expect(limits.cpuShares).toBe(512);
      for (const c of ['memory', 'cpu', 'pids']) expect(limits.dirs.get(c) ?? limits.dirs.get('')).toMatch(new RegExp(`/${node.cgroupParent}/${t.id}$`));
    }
    await expect.poll(() => node.ok('service', 'logs', 'web'), { timeout: NODE_WAIT_MS }).toMatch(new RegExp(`web\\.1\\.[a-z0-9]+@${os.hostname()}\\s+\\| hi from [a-z0-9]{12}`));
    await expect.poll(() => node.ok('service', 'logs', 'web').match(/hi from/g), { timeout: NODE_WAIT_MS }).toHaveLength(3);
  });

  it('scales up, down to zero and back, with no container left over', async () => {
    node.ok('service', 'create', '--name', 'web', '--replicas', '1', 'shoal-test:latest', ...WORKLOAD);
    node.ok('service', 'scale', 'web=10');
    expect((await running('web'))).toHaveLength(10);
    expect(runcIds()).toHaveLength(10);
    node.ok('service', 'scale', 'web=0');
    expect((await running('web'))).toHaveLength(0);
    await waitFor(() => runcIds().length === 0, { what: 'the containers of web to be removed', timeoutMs: NODE_WAIT_MS });
    node.ok('service', 'scale', 'web=2');
    expect((await running('web'))).toHaveLength(2);
    expect(runcIds()).toHaveLength(2);
    expect(node.ok('service', 'ls', '-q')).toMatch(/^[a-z0-9]{25}\n$/);
  });

  it('updates a service by replacing its tasks, keeping history in ps', async () => {
    node.ok('service', 'create', '--name', 'web', '--replicas', '2', '--env', 'GREETING=hi', 'shoal-test:latest', ...WORKLOAD);
    const before = (await running('web')).map((t) => t.id);
    node.ok('service', 'update', '--env-add', 'GREETING=bonjour', 'web');
    const live = (await running('web'));
    expect(live).toHaveLength(2);
    expect(live.map((t) => t.id).filter((id) => before.includes(id))).toEqual([]);
    expect(live.every((t) => t.spec!.container!.env.includes('GREETING=bonjour'))).toBe(true);
    expect((await tasks('web')).filter((t) => t.desired_state === 'SHUTDOWN').map((t) => t.id).sort()).toEqual(before.sort());
    expect(node.ok('service', 'ps', 'web')).toMatch(/\\_ web\.1/);
    await expect.poll(() => node.ok('service', 'logs', 'web'), { timeout: NODE_WAIT_MS }).toMatch(/bonjour from/);
    expect(inspect('web').spec!.task_template!.container!.env).toContain('GREETING=bonjour');
  });

  it('replaces exited containers per the restart policy, stops after max attempts, and says it will not converge', async () => {
    node.ok(
      'service', 'create', '-d', '--name', 'crash', '--restart-condition', 'on-failure', '--restart-max-attempts', '2',
      '--restart-delay', '100ms', 'shoal-test:latest', 'sh', '-c', 'exit 3',
    );
    // The orchestrator makes a restart in the same write that shuts the failed attempt down, so
    // once every task has ended and none is wanted running, it has given up.
    const history = await waitFor(
      async () => {
        const ts = await tasks('crash');
        return ts.length > 0 && ts.every((t) => !wantsRunning(t.desired_state) && isTerminal(t.status!.state)) && ts;
      },
      { what: 'the restart policy of crash to give up', timeoutMs: NODE_WAIT_MS },
    );
    expect(history.map((t) => [t.status!.state, t.status!.container?.exit_code])).toEqual(Array(3).fill(['FAILED', 3]));
    expect(history.map((t) => t.restart_times.length).sort()).toEqual([0, 1, 2]);
    expect(node.ok('service', 'ps', 'crash')).toMatch(/Failed .*"task: non-zero exit \(3\)"/);
    // Waiting on it cannot help now: the CLI says why instead of waiting for ever.
    expect(node.fails('service', 'scale', 'crash=1')).toMatch(/not converging.*non-zero exit \(3\)/);
  });

  it('rejects a task whose image is missing and fails one whose command does not exist', async () => {
    node.ok('service', 'create', '-d', '--name', 'noimage', '--restart-delay', '100ms', 'nosuch:image');
    await expect.poll(async () => (await tasks('noimage')).map((t) => t.status!.err), { timeout: NODE_WAIT_MS }).toContain('No such image: nosuch:image');
    expect(node.ok('service', 'ps', 'noimage')).toMatch(/Rejected .*No such image: nosuch:image/);
    const stderr = node.fails('service', 'create', '--name', 'nocmd', '--restart-delay', '100ms', 'shoal-test:latest', 'no-such-command');
    expect(stderr).toMatch(/no-such-command.*(not found|no such file)/i);
    expect((await tasks('nocmd')).some((t) => t.status!.state === 'FAILED' && /executable file not found/.test(t.status!.err))).toBe(true);
  });

  it('keeps containers through a kill -9 of shoald, re-adopts them and records exits while down', async () => {
    node.ok('service', 'create', '--name', 'web', '--replicas', '2', 'shoal-test:latest', ...WORKLOAD);
    node.ok('service', 'create', '--name', 'oneshot', '--restart-condition', 'none', 'shoal-test:latest', 'sh', '-c', 'trap "exit 7" TERM; sleep 1000000 & wait');
    const before = (await running('web')).map((t) => t.id).sort();
    const [oneshot] = await running('oneshot');
    const containers = runcIds().sort();
    expect(containers).toHaveLength(3);
    await node.stop('SIGKILL');
    closeApi(node);
    // The one-shot task ends while no shoald is there to see it.
    process.kill(oneshot.status!.container!.pid, 'SIGTERM');
    await waitFor(() => runcStatus(oneshot.id) === 'stopped', { what: `container ${oneshot.id} to exit while shoald is down` });
    expect(runcIds().sort()).toEqual(containers);
    for (const id of before) expect(runcStatus(id)).toBe('running');
    await node.start();
    await expect.poll(async () => (await tasks('oneshot'))[0].status!.state, { timeout: NODE_WAIT_MS }).toBe('FAILED');
    expect((await tasks('oneshot'))[0].status!.container!.exit_code).toBe(7);
    expect((await running('web')).map((t) => t.id).sort()).toEqual(before);
    expect((await tasks('web')).filter((t) => t.desired_state === 'RUNNING')).toHaveLength(2);
  });

  it('refuses to remove an image that containers use', () => {
    node.ok('service', 'create', '--name', 'user', 'shoal-test:latest', ...WORKLOAD);
    const id = JSON.parse(node.ok('image', 'ls', '--format', 'json')).find((i: { tags: string[] }) => i.tags.includes('shoal-test:latest')).id;
    expect(node.fails('image', 'rm', id)).toMatch(/in use/);
    expect(JSON.parse(node.ok('image', 'ls', '--format', 'json')).map((i: { id: string }) => i.id)).toContain(id);
  });

  it('removes a service and all its containers, and then its image can go', async () => {
    node.ok('service', 'create', '--name', 'web', '--replicas', '2', 'shoal-test:latest', ...WORKLOAD);
    expect(runcIds()).toHaveLength(2);
    node.ok('service', 'rm', 'web');
    await waitFor(() => runcIds().length === 0, { what: 'the containers of web to be removed', timeoutMs: NODE_WAIT_MS });
    expect(node.fails('service', 'ps', 'web')).toMatch(/service web not found/);
    expect(node.ok('service', 'ls', '-q')).toBe('');
    try {
      expect(node.ok('image', 'rm', 'shoal-test:latest')).toMatch(/Deleted: sha256:/);
      expect(node.ok('image', 'ls', '-q')).toBe('');
    } finally {
      node.ok('image', 'load', image);
    }
  });
});
