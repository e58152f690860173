import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import { apiOf, runningOf, tasksOf, waitFor } from './observe';
import { useE2eNode } from './use-node';
import { IDLE } from '../helpers/workloads';

const node = useE2eNode();
const CLI = path.join(__dirname, '../../dist/src/cli/main.js');
// A short monitor keeps the test quick; the rules do not depend on its length.
const QUICK = ['--update-monitor', '1s', '--rollback-monitor', '1s'];
const ROLLOUT_MS = 240_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI run without blocking this process, so the test can watch the service meanwhile. */
function shoal(...args: string[]): Promise<Run> {
  return new Promise((resolve) =>
    execFile(process.execPath, [CLI, '-H', node.socket, ...args], { timeout: ROLLOUT_MS }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    ),
  );
}

const inspect = async (name: string): Promise<Service__Output> => apiOf(node).getService(name);

/**
 * Updates a 6-replica service 2 slots at a time in `order`, watching its tasks until the CLI
 * returns: the fewest serving (meant to run, and running) and the most containers up at once.
 */
async function rollWatching(name: string, order: string): Promise<{ result: Run; fewestServing: number; mostUp: number; before: string[] }> {
  node.ok('service', 'create', '--name', name, '--replicas', '6', '--update-parallelism', '2', '--update-order', order, ...QUICK, 'shoal-test:latest', ...IDLE);
  const before = (await runningOf(node, name)).map((t) => t.id);
  expect(before).toHaveLength(6);
  const update = shoal('service', 'update', '--env-add', 'V=2', name);
  let done = false;
  void update.then(() => (done = true));
  let fewestServing = 6;
  let mostUp = 0;
  while (!done) {
    const tasks = await tasksOf(node, name);
    fewestServing = Math.min(fewestServing, tasks.filter((t) => t.desired_state === 'RUNNING' && t.status!.state === 'RUNNING').length);
    mostUp = Math.max(mostUp, tasks.filter((t) => t.status!.state === 'RUNNING').length);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { result: await update, fewestServing, mostUp, before };
}

describe('rolling update', () => {
  it('replaces 6 replicas 2 at a time, stop-first: never fewer than 4 running, never more than 6 containers', async () => {
    const { result: r, fewestServing, mostUp, before } = await rollWatching('web', 'stop-first');
    expect(r.code, r.stderr).toBe(0);
    expect(fewestServing).toBe(4);
    expect(mostUp).toBeLessThanOrEqual(6);
    // Progress per slot, each ending updated.
    for (let slot = 1; slot <= 6; slot++) expect(r.stderr).toMatch(new RegExp(`^web\\.${slot}: updated \\(\\d/6 updated\\)$`, 'm'));

    const s = await inspect('web');
    expect(s.update_status).toMatchObject({ state: 'completed', message: 'update completed' });
    expect(Date.parse(s.update_status!.completed_at)).toBeGreaterThanOrEqual(Date.parse(s.update_status!.started_at));
    const after = await runningOf(node, 'web');
    expect(after).toHaveLength(6);
    expect(after.every((t) => t.spec_version === s.spec_version && t.spec!.container!.env.includes('V=2'))).toBe(true);
    expect(after.some((t) => before.includes(t.id))).toBe(false);
  }, ROLLOUT_MS);

  it('start-first never has fewer than 6 running, nor more than 2 extra containers', async () => {
    const { result: r, fewestServing, mostUp } = await rollWatching('web', 'start-first');
    expect(r.code, r.stderr).toBe(0);
    expect(fewestServing).toBe(6);
    expect(mostUp).toBeLessThanOrEqual(8);
    expect((await inspect('web')).update_status!.state).toBe('completed');
    expect((await runningOf(node, 'web')).every((t) => t.spec!.container!.env.includes('V=2'))).toBe(true);
  }, ROLLOUT_MS);

  it('a shoald restarted mid-update leads again and carries the update on from what etcd holds', async () => {
    node.ok('service', 'create', '--name', 'carry', '--replicas', '4', '--update-monitor', '2s', 'shoal-test:latest', ...IDLE);
    node.ok('service', 'update', '-d', '--env-add', 'V=2', 'carry');
    const version = (await inspect('carry')).spec_version;
    const midway = await waitFor('some but not all slots of carry to run the new spec', async () => {
      const s = await inspect('carry');
      const fresh = (await runningOf(node, 'carry')).filter((t) => t.spec_version === version).length;
      return s.update_status?.state === 'updating' && fresh >= 1 && fresh < 4 && s.update_status;
    });
    await node.stop('SIGTERM');
    await node.start();
    const done = await waitFor('the update of carry to complete', async () => {
      const s = await inspect('carry');
      if (s.update_status?.state === 'completed') return s;
      const tasks = (await tasksOf(node, 'carry')).map((t) => `${t.slot}:v${t.spec_version}:${t.desired_state}/${t.status!.state}`);
      throw new Error(`${s.update_status?.state}: ${s.update_status?.message}; tasks ${tasks.join(' ')}`);
    }, 120_000);
    // The same rollout went on: not begun again, and one new task per slot.
    expect(done.update_status!.started_at).toBe(midway.started_at);
    const running = await runningOf(node, 'carry');
    expect(running.map((t) => [t.slot, t.spec_version]).sort()).toEqual([1, 2, 3, 4].map((slot) => [slot, version]));
    expect((await tasksOf(node, 'carry')).filter((t) => t.spec_version === version)).toHaveLength(4);
  }, ROLLOUT_MS);

  it('a change of the replica count alone leaves the running tasks alone', async () => {
    node.ok('service', 'create', '--name', 'count', '--replicas', '2', ...QUICK, 'shoal-test:latest', ...IDLE);
    const before = (await runningOf(node, 'count')).map((t) => t.id).sort();
    node.ok('service', 'update', '--replicas', '3', 'count');
    const after = (await runningOf(node, 'count')).map((t) => t.id);
    expect(after).toHaveLength(3);
    expect(before.every((id) => after.includes(id))).toBe(true);
  });

  it('an update to an image that is not there rolls back by itself and ends on the old spec', async () => {
    node.ok('service', 'create', '--name', 'rb', '--replicas', '3', '--update-failure-action', 'rollback', ...QUICK, 'shoal-test:latest', ...IDLE);
    const created = await inspect('rb');
    const r = await shoal('service', 'update', '--image', 'shoal-test:absent', 'rb');
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^Error: update of service rb was rolled back: task rb\.1 \(\w+\) (rejected|failed): .*shoal-test:absent.*; 1 of 3 updated tasks failed, more than the max failure ratio 0$/);

    const s = await inspect('rb');
    expect(s.update_status!.state).toBe('rollback_completed');
    expect(s.spec!.task_template!.container!.image).toBe('shoal-test:latest');
    expect(s.spec_version).toBe(created.spec_version);
    expect(s.previous_spec!.task_template!.container!.image).toBe('shoal-test:absent');
    const running = await runningOf(node, 'rb');
    expect(running).toHaveLength(3);
    expect(running.every((t) => t.spec!.container!.image === 'shoal-test:latest')).toBe(true);
  }, ROLLOUT_MS);

  it('an update whose tasks fail pauses by default, the old tasks serving on, and a rollback undoes it', async () => {
    node.ok('service', 'create', '--name', 'halt', '--replicas', '3', ...QUICK, 'shoal-test:latest', ...IDLE);
    const r = await shoal('service', 'update', '--image', 'shoal-test:absent', 'halt');
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^Error: update of service halt paused: task halt\.1 \(\w+\) (rejected|failed): .*shoal-test:absent.*; 1 of 3 updated tasks failed, more than the max failure ratio 0$/);
    expect((await inspect('halt')).update_status!.state).toBe('paused');
    const serving = await runningOf(node, 'halt');
    expect(serving.map((t) => [t.slot, t.spec!.container!.image]).sort()).toEqual([
      [2, 'shoal-test:latest'],
      [3, 'shoal-test:latest'],
    ]);

    node.ok('service', 'rollback', 'halt');
    const s = await inspect('halt');
    expect(s.update_status!.state).toBe('rollback_completed');
    expect((await runningOf(node, 'halt')).map((t) => t.spec!.container!.image)).toEqual(Array(3).fill('shoal-test:latest'));
  }, ROLLOUT_MS);

  it('service rollback restores the previous spec, and refuses when there is none', async () => {
    node.ok('service', 'create', '--name', 'back', '--replicas', '2', ...QUICK, 'shoal-test:latest', ...IDLE);
    expect(node.fails('service', 'rollback', 'back')).toBe('Error: service back has no previous spec to roll back to: it has not been updated since it was created\n');
    expect(node.fails('service', 'rollback', 'nothing-here')).toBe('Error: service nothing-here not found\n');

    node.ok('service', 'update', '--env-add', 'V=2', 'back');
    const r = await shoal('service', 'rollback', 'back');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^rollback started: manually requested rollback$/m);
    const s = await inspect('back');
    expect(s.update_status).toMatchObject({ state: 'rollback_completed', message: 'manually requested rollback' });
    expect(s.spec!.task_template!.container!.env).toEqual([]);
    const running = await runningOf(node, 'back');
    expect(running).toHaveLength(2);
    expect(running.every((t) => t.spec!.container!.env.length === 0 && t.spec_version === s.spec_version)).toBe(true);
  }, ROLLOUT_MS);
});

describe('bad rollout settings', () => {
  it('the CLI refuses each, naming the flag, and creates nothing', async () => {
    const cases: [string, RegExp][] = [
      ['--update-delay=-5s', /invalid --update-delay "-5s"/],
      ['--rollback-monitor=-1s', /invalid --rollback-monitor "-1s"/],
      ['--update-max-failure-ratio=1.5', /--update-max-failure-ratio must be a number from 0 to 1, got "1\.5"/],
      ['--update-failure-action=retry', /--update-failure-action must be pause, continue or rollback, got "retry"/],
      ['--rollback-failure-action=rollback', /--rollback-failure-action must be pause or continue, got "rollback"/],
      ['--update-order=random', /--update-order must be stop-first or start-first, got "random"/],
    ];
    const results = await Promise.all(cases.map(([flag]) => shoal('service', 'create', '-d', '--name', 'bad', flag, 'shoal-test:latest')));
    results.forEach((r, i) => {
      expect(r.code, cases[i][0]).not.toBe(0);
      expect(r.stderr.trim().split('\n'), cases[i][0]).toHaveLength(1);
      expect(r.stderr, cases[i][0]).toMatch(cases[i][1]);
    });
    expect((await apiOf(node).listServices()).services).toEqual([]);
  });

  it('the daemon refuses each, naming the field, and leaves the service as it was', async () => {
    node.ok('service', 'create', '--name', 'web', 'shoal-test:latest', ...IDLE);
    const before = await inspect('web');
    const cases: [object, string][] = [
      [{ update_config: { delay_ms: -1 } }, 'update_config.delay_ms: must be a non-negative integer'],
      [{ rollback_config: { monitor_ms: -1 } }, 'rollback_config.monitor_ms: must be a non-negative integer'],
      [{ update_config: { max_failure_ratio: 2 } }, 'update_config.max_failure_ratio: must be a number from 0 to 1'],
      [{ update_config: { failure_action: 'retry' } }, 'update_config.failure_action: must be one of pause, continue, rollback'],
      [{ update_config: { order: 'random' } }, 'update_config.order: must be one of stop-first, start-first'],
    ];
    for (const [change, message] of cases) {
      const spec = { ...before.spec!, ...change };
      await expect(apiOf(node).updateService({ service: before.id, version: before.version, spec })).rejects.toThrow(`invalid service spec: ${message}`);
    }
    expect(await inspect('web')).toEqual(before);
  });
});
