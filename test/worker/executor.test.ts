import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import type { TaskStatus } from '../../src/gen/shoal/v1/TaskStatus';
import { quietLogger } from '../../src/common/logger';
import { rank, type State } from '../../src/common/tasks';
import { Executor } from '../../src/worker/executor';
import { service, task } from '../fixtures';
import { FakeImages, FakeRuntime, resolvedImage, settle } from '../helpers/executor-fakes';

const IMAGE = resolvedImage(`sha256:${'a'.repeat(64)}`, 'shoal-test:latest');
const svc = service(1);

const dirs: string[] = [];
const executors: Executor[] = [];
const allReports: [string, TaskStatus][][] = [];

afterEach(() => {
  for (const e of executors.splice(0)) e.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  // Whatever a test did, no executor ever reported a task backwards or twice in the same state.
  for (const reports of allReports.splice(0)) {
    const last = new Map<string, State>();
    for (const [id, { state }] of reports) {
      const prev = last.get(id);
      expect(prev === undefined || rank(state as State) > rank(prev), `${id}: ${prev} then ${state}`).toBe(true);
      last.set(id, state as State);
    }
  }
});

/** An executor on a FakeRuntime, as the daemon makes one; `logDir` and `runtime` carry over a restart. */
async function startExecutor(opts: { runtime?: FakeRuntime; images?: FakeImages; logDir?: string; concurrency?: number } = {}) {
  const runtime = opts.runtime ?? new FakeRuntime();
  const logDir = opts.logDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-executor-'));
  if (!opts.logDir) dirs.push(logDir);
  const reports: [string, TaskStatus][] = [];
  allReports.push(reports);
  const executor = new Executor({
    runtime,
    images: opts.images ?? new FakeImages([IMAGE]),
    logDir,
    concurrency: opts.concurrency ?? 4,
    report: (id, status) => reports.push([id, status]),
    log: quietLogger(),
  });
  executors.push(executor);
  await executor.init();
  const of = (id: string) => reports.filter(([t]) => t === id).map(([, s]) => s);
  const states = (id: string) => of(id).map((s) => s.state);
  return { executor, runtime, logDir, reports, of, states };
}

/** The task as the manager would send it again: its desired state, and the status it has heard of. */
const resent = (t: Task__Output, desired: State, observed: State): Task__Output => ({ ...t, desired_state: desired, status: { ...t.status!, state: observed } });

describe('Executor', () => {
  it('starts a new task, reporting PREPARING and then RUNNING with its pid', async () => {
    const n = await startExecutor();
    const t = task(svc, 1, 'ASSIGNED');
    n.executor.setAssignments([t]);
    await vi.waitFor(() => expect(n.states(t.id)).toEqual(['PREPARING', 'RUNNING']));
    expect(n.runtime.calls).toEqual([`create ${t.id}`, `start ${t.id}`]);
    expect(n.of(t.id)[1]).toMatchObject({ message: 'started', container: { container_id: t.id, pid: (await n.runtime.state(t.id))!.pid } });
    expect(n.runtime.configs.get(t.id)?.logPath).toBe(n.executor.logPath(t.id));
  });

  it('records an exit, COMPLETE on 0 and FAILED with the code otherwise, and removes the container', async () => {
    const n = await startExecutor();
    const [ok, bad] = [task(svc, 1, 'ASSIGNED'), task(svc, 2, 'ASSIGNED')];
    n.executor.setAssignments([ok, bad]);
    await vi.waitFor(() => expect(n.runtime.ids()).toEqual([ok.id, bad.id].sort()));
    await vi.waitFor(() => expect(n.states(bad.id).at(-1)).toBe('RUNNING'));
    n.runtime.exit(ok.id, 0);
    n.runtime.exit(bad.id, 3);
    await vi.waitFor(() => expect(n.runtime.ids()).toEqual([]));
    expect(n.of(ok.id).at(-1)).toMatchObject({ state: 'COMPLETE', message: 'finished', container: { exit_code: 0 } });
    expect(n.of(bad.id).at(-1)).toMatchObject({ state: 'FAILED', err: 'task: non-zero exit (3)', container: { exit_code: 3 } });
    expect(n.executor.imageInUse(IMAGE.id)).toBe(false);
  });

  it("stops a task desired SHUTDOWN with the task's stop signal and grace period, then removes it", async () => {
    const n = await startExecutor();
    const base = task(svc, 1, 'ASSIGNED');
    const t = { ...base, spec: { ...base.spec!, container: { ...base.spec!.container!, stop_signal: 'SIGINT', stop_grace_period_ms: 3000 } } };
    n.executor.setAssignments([t]);
    await vi.waitFor(() => expect(n.states(t.id).at(-1)).toBe('RUNNING'));
    n.executor.setAssignments([resent(t, 'SHUTDOWN', 'RUNNING')]);
    await vi.waitFor(() => expect(n.runtime.ids()).toEqual([]));
    expect(n.runtime.calls.slice(2)).toEqual([`stop ${t.id} SIGINT 3000`, `remove ${t.id}`]);
    expect(n.states(t.id)).toEqual(['PREPARING', 'RUNNING', 'SHUTDOWN']);
  });

  it('reports a task with a health check STARTING, RUNNING once a check passes, and stops checking a task no longer assigned', async () => {
    const n = await startExecutor();
    const base = task(svc, 1, 'ASSIGNED');
    const healthcheck = { test: ['CMD', '/bin/ok'], interval_ms: 20, timeout_ms: 1000, start_period_ms: 0, retries: 3 };
    const t = { ...base, spec: { ...base.spec!, container: { ...base.spec!.container!, healthcheck } } };
    n.runtime.execOutcomes.set(t.id, { exitCode: 1, output: '', timedOut: false });
    n.executor.setAssignments([t]);
    await vi.waitFor(() => expect(n.states(t.id)).toEqual(['PREPARING', 'STARTING']));
    n.runtime.execOutcomes.delete(t.id);
    await vi.waitFor(() => expect(n.states(t.id)).toEqual(['PREPARING', 'STARTING', 'RUNNING']));
    expect(n.of(t.id).at(-1)).toMatchObject({ health: 'healthy' });

    n.executor.setAssignments([]);
    await vi.waitFor(() => expect(n.runtime.ids()).toEqual([]));
    const checks = n.runtime.execs.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(n.runtime.execs).toHaveLength(checks);
  });

  it('touches nothing before its first assignments, then removes the containers and logs of tasks not assigned', async () => {
    const runtime = new FakeRuntime();
    runtime.add('orphan1', 'running');
    runtime.add('orphan2', 'stopped', 0);
    const n = await startExecutor({ runtime });
    for (const f of ['orphan1.log', 'orphan1.log.1', 'gone.log']) fs.writeFileSync(path.join(n.logDir, f), '');
    n.executor.converge();
    await settle();
    expect(runtime.calls).toEqual([]);
    expect(n.executor.imagesSettled()).toBe(false);

    const kept = task(svc, 1, 'COMPLETE', { desired_state: 'SHUTDOWN' });
    fs.writeFileSync(n.executor.logPath(kept.id), '');
    n.executor.setAssignments([kept]);
    await vi.waitFor(() => expect(runtime.ids()).toEqual([]));
    expect(runtime.calls).toEqual(expect.arrayContaining(['stop orphan1 SIGTERM 10000', 'remove orphan1', 'remove orphan2']));
    expect(runtime.calls).not.toContain('stop orphan2 SIGTERM 10000');
    n.executor.converge();
    expect(fs.readdirSync(n.logDir)).toEqual([`${kept.id}.log`]);
    expect(n.reports).toEqual([]);
  });

  it('after a restart, adopts running containers and reports RUNNING without restarting them', async () => {
    const first = await startExecutor();
    const [reported, unreported] = [task(svc, 1, 'ASSIGNED'), task(svc, 2, 'ASSIGNED')];
    first.executor.setAssignments([reported, unreported]);
    await vi.waitFor(() => expect(first.reports.filter(([, s]) => s.state === 'RUNNING')).toHaveLength(2));
    first.executor.close();
    const pids = await Promise.all([reported, unreported].map(async (t) => (await first.runtime.state(t.id))!.pid));

    const second = await startExecutor({ runtime: first.runtime, logDir: first.logDir });
    // The manager heard of one RUNNING report; the other was lost with the old daemon.
    second.executor.setAssignments([resent(reported, 'RUNNING', 'RUNNING'), resent(unreported, 'RUNNING', 'PREPARING')]);
    await vi.waitFor(() => expect(second.states(unreported.id)).toEqual(['RUNNING']));
    await settle();
    expect(second.of(unreported.id)[0]).toMatchObject({ message: 'started', container: { pid: pids[1] } });
    expect(second.of(reported.id)).toEqual([]);
    expect(first.runtime.calls.filter((c) => /^(create|start|stop|remove) /.test(c))).toHaveLength(4);
    expect(second.executor.imagesSettled()).toBe(true);
    expect(second.executor.imageInUse(IMAGE.id)).toBe(true);
  });

  it('records the exit of a container that ended while the daemon was down', async () => {
    const runtime = new FakeRuntime();
    const t = task(svc, 1, 'RUNNING');
    runtime.add(t.id, 'stopped', 7);
    const n = await startExecutor({ runtime });
    n.executor.setAssignments([t]);
    await vi.waitFor(() => expect(runtime.ids()).toEqual([]));
    expect(n.of(t.id)).toEqual([expect.objectContaining({ state: 'FAILED', err: 'task: non-zero exit (7)', container: expect.objectContaining({ exit_code: 7 }) })]);
  });

  it('fails a task whose container vanished while the node was down, and does not start it again', async () => {
    const n = await startExecutor();
    const t = task(svc, 1, 'RUNNING');
    n.executor.setAssignments([t]);
    await vi.waitFor(() => expect(n.states(t.id)).toEqual(['FAILED']));
    expect(n.of(t.id)[0].err).toBe('container disappeared while the node was down');
    n.executor.setAssignments([t]);
    await settle();
    expect(n.runtime.calls).toEqual([]);
    expect(n.states(t.id)).toEqual(['FAILED']);
  });

  it('rejects a task whose image is missing', async () => {
    const n = await startExecutor({ images: new FakeImages() });
    const t = task(svc, 1, 'ASSIGNED');
    n.executor.setAssignments([t]);
    await vi.waitFor(() => expect(n.states(t.id)).toEqual(['PREPARING', 'REJECTED']));
    expect(n.of(t.id)[1].err).toBe('No such image: shoal-test:latest');
    await settle();
    expect(n.runtime.calls).toEqual([]);
  });

  it('never reports backwards when the manager lags behind', async () => {
    const n = await startExecutor();
    const t = task(svc, 1, 'ASSIGNED');
    n.executor.setAssignments([t]);
    await vi.waitFor(() => expect(n.states(t.id)).toEqual(['PREPARING', 'RUNNING']));
    n.executor.setAssignments([resent(t, 'RUNNING', 'ASSIGNED')]);
    await settle();
    n.runtime.exit(t.id, 1);
    await vi.waitFor(() => expect(n.states(t.id)).toEqual(['PREPARING', 'RUNNING', 'FAILED']));
    // Still RUNNING to the manager, which has not heard of the exit yet: nothing is started again.
    n.executor.setAssignments([resent(t, 'RUNNING', 'RUNNING')]);
    await settle();
    expect(n.states(t.id)).toEqual(['PREPARING', 'RUNNING', 'FAILED']);
    expect(n.runtime.calls).toEqual([`create ${t.id}`, `start ${t.id}`, `remove ${t.id}`]);
  });

  it('creates no more containers at once than its concurrency', async () => {
    const runtime = new FakeRuntime();
    let open!: () => void;
    runtime.gate = new Promise((r) => (open = r));
    const n = await startExecutor({ runtime, concurrency: 2 });
    const tasks = [1, 2, 3, 4, 5].map((slot) => task(svc, slot, 'ASSIGNED'));
    n.executor.setAssignments(tasks);
    await settle();
    expect(runtime.calls.filter((c) => c.startsWith('create '))).toHaveLength(2);
    open();
    await vi.waitFor(() => expect(n.reports.filter(([, s]) => s.state === 'RUNNING')).toHaveLength(5));
    expect(runtime.maxCreating).toBe(2);
  });

  it('tells image collection which images are in use and which the assigned tasks want', async () => {
    const other = resolvedImage(`sha256:${'c'.repeat(64)}`, 'other:1');
    const n = await startExecutor({ images: new FakeImages([IMAGE, other]) });
    const web = task(svc, 1, 'ASSIGNED');
    const done = task(svc, 2, 'COMPLETE', { desired_state: 'SHUTDOWN', spec: { ...web.spec!, container: { ...web.spec!.container!, image: 'other:1' } } });
    expect(n.executor.imagesSettled()).toBe(true);
    n.executor.setAssignments([web, done]);
    expect(n.executor.wantedImages()).toEqual(['shoal-test:latest']);
    await vi.waitFor(() => expect(n.executor.imageInUse(IMAGE.id)).toBe(true));
    expect(n.executor.imageInUse(other.id)).toBe(false);
    n.executor.setAssignments([]);
    await vi.waitFor(() => expect(n.runtime.ids()).toEqual([]));
    expect(n.executor.imageInUse(IMAGE.id)).toBe(false);
    expect(n.executor.wantedImages()).toEqual([]);
  });
});
