import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { IDLE } from '../helpers/workloads';
import { NODE_TEST_TIMEOUT_MS } from '../helpers/test-node';
import { healthyOf, tasksOf, waitFor } from './observe';
import { useE2eNode } from './use-node';

const node = useE2eNode();
const CLI = path.join(__dirname, '../../dist/src/cli/main.js');
// Short intervals keep the tests quick; the rules do not depend on them.
const QUICK = ['--health-interval', '500ms', '--health-timeout', '2s'];

/** The CLI started in the background: what it has written to stderr so far, and how it ended. */
function background(...args: string[]): { stderr: () => string; done: Promise<number> } {
  const child = spawn(process.execPath, [CLI, '-H', node.socket, ...args], { stdio: ['ignore', 'ignore', 'pipe'], timeout: NODE_TEST_TIMEOUT_MS });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  return { stderr: () => stderr, done: new Promise((resolve) => child.on('close', (code) => resolve(code ?? -1))) };
}

/** A file inside a running task's container, reached from the host through its process's root. */
const inContainer = (t: Task__Output, file: string) => path.join('/proc', String(t.status!.container!.pid), 'root', file);

describe('health checks', () => {
  it('a task is starting until its check passes, then running and healthy; ps, ls and the wait of create show it', async () => {
    // Failed checks in the start period do not count: it stays starting until the test makes it ready.
    const create = background('service', 'create', '--name', 'web', '--health-cmd', 'test -e /tmp/ready', '--health-start-period', '5m', ...QUICK, 'shoal-test:latest', ...IDLE);
    await waitFor('create to show the task waiting for its check', () => create.stderr().includes('overall progress: 0 out of 1 tasks running, 1 starting (waiting for a health check to pass)'));
    const [starting] = await tasksOf(node, 'web');
    expect(starting.status).toMatchObject({ state: 'STARTING', health: 'starting' });
    expect(node.ok('service', 'ps', 'web')).toMatch(/Starting \(health: starting\)/);
    expect(node.ok('service', 'ls')).toMatch(/web\s+replicated\s+0\/1/);

    fs.writeFileSync(inContainer(starting, 'tmp/ready'), '');
    expect(await create.done, create.stderr()).toBe(0);
    expect(create.stderr()).toMatch(/^verify: service web converged$/m);
    const [healthy] = await healthyOf(node, 'web');
    expect(healthy.id).toBe(starting.id);
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
    for (const victim of before) fs.writeFileSync(inContainer(victim, 'tmp/sick'), '');
    const failed = await waitFor('both tasks to fail as unhealthy', async () => {
      const ended = (await tasksOf(node, 'sick')).filter((t) => before.some((b) => b.id === t.id) && t.status!.state === 'FAILED');
      return ended.length === 2 && ended;
    });
    for (const t of failed) {
      expect(t.status!.health).toBe('unhealthy');
      expect(t.status!.err).toBe('unhealthy container: 2 health checks in a row failed; the last: exit status 1');
    }
    const after = await waitFor('two new healthy tasks of sick', async () => {
      const healthy = await healthyOf(node, 'sick');
      return healthy.length === 2 && healthy.every((t) => !before.some((b) => b.id === t.id)) && healthy;
    });
    expect(after.map((t) => t.slot).sort()).toEqual([1, 2]);
    expect(node.ok('service', 'ps', 'sick')).toMatch(/Failed \(unhealthy\).*"unhealthy container: 2 health checks in a/);
  });
});
