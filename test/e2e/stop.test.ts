import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { configuredImage } from './images';
import { nextTaskLogging, runningOf, taskLines, tasksOf } from './observe';
import { useE2eNode } from './use-node';

const node = useE2eNode();

beforeAll(() => {
  node.ok('image', 'load', configuredImage(node, 'shoal-e2e:usr1', { Env: ['PATH=/bin'], StopSignal: 'SIGUSR1' }));
});

// Each `service update` waits out the update monitor (5 s by default); what is tested here does not depend on it.
const QUICK = ['--update-monitor', '1s'];

/** A container that reports each of these signals, takes a moment to clean up, and exits 0. */
const GRACEFUL = [
  'sh',
  '-c',
  'for s in TERM USR1 HUP; do trap "echo got $s; sleep 1; echo exiting; exit 0" $s; done; echo ready; while true; do sleep 0.1; done',
];
/** A container that logs SIGTERM and carries on, saying so while it still runs. */
const STUBBORN = ['sh', '-c', 'trap "echo got TERM, ignoring it; ignored=1" TERM; echo ready; while true; do [ -n "$ignored" ] && echo still running; sleep 0.1; done'];

/** Whether the daemon had to SIGKILL this task's container after its grace period. */
const killed = (taskId: string) =>
  fs
    .readFileSync(path.join(node.dir, 'shoald.log'), 'utf8')
    .split('\n')
    .some((l) => l.includes(`"id":"${taskId}"`) && l.includes('did not stop in time; killing it'));

/**
 * Creates the service, waits for its task, then replaces the task through an update (which waits
 * until the old container is gone); returns the old task's id and what it logged.
 */
async function stopOnce(name: string, flags: string[], image: string, command: string[]): Promise<{ id: string; lines: string[] }> {
  node.ok('service', 'create', ...QUICK, '--name', name, ...flags, image, ...command);
  const task = await nextTaskLogging(node, name, /^ready$/);
  node.ok('service', 'update', '--env-add', 'ROUND=2', name);
  expect((await tasksOf(node, name)).find((t) => t.id === task.id)!.status!.state).toBe('SHUTDOWN');
  expect((await runningOf(node, name)).map((t) => t.id)).not.toContain(task.id);
  expect(node.containerIds()).not.toContain(task.id);
  return { id: task.id, lines: await taskLines(node, name, task.id) };
}

describe('stop signal and grace period', () => {
  it('a task that exits within its grace period finishes its own clean-up and is not killed', async () => {
    const { id, lines } = await stopOnce('graceful', ['--stop-grace-period', '1m'], 'shoal-test:latest', GRACEFUL);
    expect(lines).toEqual(['ready', 'got TERM', 'exiting']);
    expect(killed(id)).toBe(false);
  });

  it('a task that ignores the signal runs on through the grace period, then is killed', async () => {
    const { id, lines } = await stopOnce('stubborn', ['--stop-grace-period', '2s'], 'shoal-test:latest', STUBBORN);
    expect(lines.slice(0, 2)).toEqual(['ready', 'got TERM, ignoring it']);
    // Lines written after the signal: it was left running, not killed at once.
    expect(lines.slice(2).length).toBeGreaterThan(0);
    expect(new Set(lines.slice(2))).toEqual(new Set(['still running']));
    expect(killed(id)).toBe(true);
  });

  it('a grace period of 0 kills at once', async () => {
    const { id, lines } = await stopOnce('instant', ['--stop-grace-period', '0'], 'shoal-test:latest', GRACEFUL);
    expect(lines).not.toContain('exiting');
    expect(killed(id)).toBe(true);
  });

  it('the image’s StopSignal is sent when the service names none', async () => {
    const { id, lines } = await stopOnce('imagesig', ['--stop-grace-period', '1m'], 'shoal-e2e:usr1', GRACEFUL);
    expect(lines).toEqual(['ready', 'got USR1', 'exiting']);
    expect(killed(id)).toBe(false);
  });

  it('--stop-signal overrides the image’s StopSignal', async () => {
    const { lines } = await stopOnce('flagsig', ['--stop-grace-period', '1m', '--stop-signal', 'HUP'], 'shoal-e2e:usr1', GRACEFUL);
    expect(lines).toEqual(['ready', 'got HUP', 'exiting']);
  });

  it('service rm stops the containers with the service’s signal and grace period', async () => {
    node.ok('service', 'create', ...QUICK, '--name', 'removed', '--stop-grace-period', '1m', 'shoal-e2e:usr1', ...GRACEFUL);
    const task = await nextTaskLogging(node, 'removed', /^ready$/);
    // The task's log goes with the task; a second name for the file keeps what it says.
    const kept = path.join(node.dir, `${task.id}.kept.log`);
    fs.linkSync(path.join(node.dataDir, 'logs', `${task.id}.log`), kept);
    node.ok('service', 'rm', 'removed');
    await expect.poll(() => node.containerIds(), { timeout: 70_000, message: 'the removed service’s container to be gone' }).not.toContain(task.id);
    const written = fs.readFileSync(kept, 'utf8');
    expect(written).toMatch(/got USR1[\s\S]*exiting/);
    expect(killed(task.id)).toBe(false);
  });
});
