import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { IDLE } from '../helpers/workloads';
import { NODE_TEST_TIMEOUT_MS } from '../helpers/test-node';
import { apiOf, healthyOf, tasksOf, waitFor } from './observe';
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
      return (await healthyOf(node, 'web')).some((t) => t.spec!.container!.env.includes('A=1'));
    });
    const r = await wait;
    expect(r.code, r.stderr).toBe(0);
    expect(node.ok('service', 'ps', 'web')).toMatch(/Running \(healthy\)/);
    expect(node.ok('service', 'ls')).toMatch(/web\s+replicated\s+1\/1/);
  });

  it('a task whose check starts failing is stopped, fails as unhealthy and is replaced, also after a kill -9 of shoald', async () => {
    node.ok('service', 'create', '--name', 'sick', '--replicas', '2', '--restart-delay', '0s', '--health-cmd', 'test ! -e /tmp/sick', '--health-retries', '2', ...QUICK, 'shoal-test:latest', ...IDLE);
    const before = await healthyOf(node, 'sick');
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
      const healthy = await healthyOf(node, 'sick');
      return healthy.length === 2 && healthy.every((t) => !before.some((b) => b.id === t.id)) && healthy;
    });
    expect(after.map((t) => t.slot).sort()).toEqual([1, 2]);
    expect(node.ok('service', 'ps', 'sick')).toMatch(/Failed \(unhealthy\).*"unhealthy container: 2 health checks in a/);
  });
});
