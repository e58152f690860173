import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { IDLE, thenIdle } from '../helpers/workloads';
import { NODE_TEST_TIMEOUT_MS } from '../helpers/test-node';
import { configuredImage } from './images';
import { apiOf, runningOf, tasksOf, waitFor } from './observe';
import { useE2eNode } from './use-node';

const node = useE2eNode();
const CLI = path.join(__dirname, '../../dist/src/cli/main.js');
// Short intervals keep the tests quick; the rules do not depend on them.
const QUICK = ['--health-interval', '500ms', '--health-timeout', '2s'];

/** The CLI run without blocking this process, so the test can watch and poke the node meanwhile. */
function shoal(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [CLI, '-H', node.socket, ...args], { timeout: NODE_TEST_TIMEOUT_MS }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    ),
  );
}

/** A file inside a running task's container, written from the host through its rootfs mount. */
const inContainer = (t: Task__Output, file: string) => path.join(node.dataDir, 'containers', 'bundles', t.id, 'rootfs', file);

const healthyOf = async (service: string) => (await runningOf(node, service)).filter((t) => t.status!.health === 'healthy');

describe('health checks', () => {
  it('a task is starting until its check passes, then running and healthy; ps and ls show it', async () => {
    // Failed checks in the start period do not count: it stays starting until the test makes it ready.
    node.ok('service', 'create', '-d', '--name', 'web', '--health-cmd', 'test -e /tmp/ready', '--health-start-period', '5m', ...QUICK, 'shoal-test:latest', ...IDLE);
    const starting = await waitFor('the task of web to be starting', async () => (await tasksOf(node, 'web')).find((t) => t.status!.state === 'STARTING'));
    expect(starting.status!.health).toBe('starting');
    expect(node.ok('service', 'ps', 'web')).toMatch(/Starting \(health: starting\)/);
    expect(node.ok('service', 'ls')).toMatch(/web\s+replicated\s+0\/1/);
    const wait = shoal('service', 'update', '--env-add', 'A=1', 'web');

    // The new task of the update (stop-first) must pass its own check: make every container ready.
    const ready = new Set<string>();
    await waitFor('the update of web to be healthy', async () => {
      for (const t of await tasksOf(node, 'web')) {
        if (t.status!.state === 'STARTING' && !ready.has(t.id)) {
          fs.writeFileSync(inContainer(t, 'tmp/ready'), '');
          ready.add(t.id);
        }
      }
      return (await healthyOf('web')).some((t) => t.spec!.container!.env.includes('A=1'));
    });
    const r = await wait;
    expect(r.code, r.stderr).toBe(0);
    expect(node.ok('service', 'ps', 'web')).toMatch(/Running \(healthy\)/);
    expect(node.ok('service', 'ls')).toMatch(/web\s+replicated\s+1\/1/);
  });

  it('a task whose check starts failing is stopped, fails as unhealthy and is replaced, also after a kill -9 of shoald', async () => {
    node.ok('service', 'create', '--name', 'sick', '--replicas', '2', '--restart-delay', '0s', '--health-cmd', 'test ! -e /tmp/sick', '--health-retries', '2', ...QUICK, 'shoal-test:latest', ...IDLE);
    const before = await healthyOf('sick');
    expect(before).toHaveLength(2);

    // A shoald killed outright finds its containers again and resumes checking them.
    await node.stop('SIGKILL');
    await node.start();
    for (const victim of before) {
      fs.writeFileSync(inContainer(victim, 'tmp/sick'), '');
      const failed = await waitFor(`task ${victim.id} to fail as unhealthy`, async () => (await tasksOf(node, 'sick')).find((t) => t.id === victim.id && t.status!.state === 'FAILED'));
      expect(failed.status!.health).toBe('unhealthy');
      expect(failed.status!.err).toBe('unhealthy container: 2 health checks in a row failed; the last: exit status 1');
    }
    const after = await waitFor('two new healthy tasks of sick', async () => {
      const healthy = await healthyOf('sick');
      return healthy.length === 2 && healthy.every((t) => !before.some((b) => b.id === t.id)) && healthy;
    });
    expect(after.map((t) => t.slot).sort()).toEqual([1, 2]);
    expect(node.ok('service', 'ps', 'sick')).toMatch(/Failed \(unhealthy\).*"unhealthy container: 2 health checks in a/);
  });

  it('an update whose new tasks turn unhealthy rolls back, per its failure action, and ends on the old spec', async () => {
    node.ok('service', 'create', '--name', 'rb', '--replicas', '2', '--health-cmd', 'true', '--update-failure-action', 'rollback', '--update-monitor', '1s', '--rollback-monitor', '1s', ...QUICK, 'shoal-test:latest', ...IDLE);
    const created = await apiOf(node).getService('rb');
    const r = await shoal('service', 'update', '--health-cmd', 'echo broken; exit 3', '--health-retries', '1', 'rb');
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(
      /^Error: update of service rb was rolled back: task rb\.1 \(\w+\) failed: unhealthy container: 1 health check in a row failed; the last: exit status 3: broken; 1 of 2 updated tasks failed, more than the max failure ratio 0$/,
    );
    const s = await apiOf(node).getService('rb');
    expect(s.update_status!.state).toBe('rollback_completed');
    expect(s.spec_version).toBe(created.spec_version);
    expect(s.spec!.task_template!.container!.healthcheck!.test).toEqual(['CMD-SHELL', 'true']);
    const serving = await healthyOf('rb');
    expect(serving.map((t) => t.spec_version)).toEqual([created.spec_version, created.spec_version]);
  });

  it("runs the image's HEALTHCHECK unless --no-healthcheck, and refuses a bad check, storing nothing", async () => {
    const ns = (ms: number) => ms * 1e6;
    const tar = configuredImage(node, 'checked:1', { Healthcheck: { Test: ['CMD-SHELL', 'test -e /tmp/ready'], Interval: ns(500), Timeout: ns(2000), Retries: 2 } });
    node.ok('image', 'load', tar);
    node.ok('service', 'create', '--name', 'inherit', 'checked:1', ...thenIdle('touch /tmp/ready'));
    expect((await healthyOf('inherit')).length).toBe(1);
    node.ok('service', 'create', '--name', 'off', '--no-healthcheck', 'checked:1', ...IDLE);
    const [off] = await runningOf(node, 'off');
    expect(off.status!.health).toBe('');

    expect(node.fails('service', 'create', '--name', 'bad', '--health-cmd', '', 'checked:1')).toBe(
      'Error: --health-cmd must not be empty (--no-healthcheck turns the image’s check off)\n',
    );
    expect(node.fails('service', 'create', '--name', 'bad', '--health-cmd', 'true', '--health-interval', '10ms', 'checked:1')).toBe(
      'Error: invalid service spec: task_template.container.healthcheck.interval_ms: must be 0 (the default) or at least 100 ms: each check runs a process in the container\n',
    );
    expect(node.fails('service', 'create', '--name', 'bad', '--health-retries', '-1', 'checked:1')).toMatch(/healthcheck\.retries: must be a non-negative integer/);
    expect((await apiOf(node).listServices()).services.map((s) => s.service!.spec!.name).sort()).toEqual(['inherit', 'off']);
  });
});
