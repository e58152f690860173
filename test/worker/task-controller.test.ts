import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { quietLogger } from '../../src/common/logger';
import type { ContainerSpec__Output } from '../../src/gen/shoal/v1/ContainerSpec';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import type { RegistryClient } from '../../src/images/registry/client';
import type { State } from '../../src/common/tasks';
import { Semaphore } from '../../src/worker/semaphore';
import { exitStatus, nextStep, type Health, type Observed, type StatusReport } from '../../src/worker/exec/lifecycle';
import type { HealthConfig__Output } from '../../src/gen/shoal/v1/HealthConfig';
import { TaskController, type NetworkAttacher } from '../../src/worker/exec/task-controller';
import { service, task } from '../fixtures';
import { FakeImages, FakeRuntime, resolvedImage } from '../helpers/executor-fakes';

const running: Observed = { status: 'running', exitCode: null };
const created: Observed = { status: 'created', exitCode: null };
const unknown: Observed = { status: 'unknown', exitCode: null };
const exited = (exitCode: number | null): Observed => ({ status: 'stopped', exitCode });

describe('nextStep', () => {
  const cases: [State, State, Observed | undefined, ReturnType<typeof nextStep>][] = [
    // a new task is prepared, then started
    ['RUNNING', 'ASSIGNED', undefined, { op: 'prepare' }],
    ['RUNNING', 'PREPARING', undefined, { op: 'prepare' }],
    ['RUNNING', 'PREPARING', created, { op: 'start' }],
    // a leftover the runtime cannot account for is redone
    ['RUNNING', 'PREPARING', unknown, { op: 'prepare' }],
    // a create cut short by the daemon's stop is made again; one that ran, ended with no code, failed
    ['RUNNING', 'PREPARING', { status: 'stopped', exitCode: null }, { op: 'prepare' }],
    ['RUNNING', 'ASSIGNED', { status: 'stopped', exitCode: null }, { op: 'prepare' }],
    ['RUNNING', 'RUNNING', { status: 'stopped', exitCode: null }, { op: 'exited', exitCode: null }],
    // running: reported once, then left alone
    ['RUNNING', 'PREPARING', running, { op: 'adopt' }],
    ['RUNNING', 'ASSIGNED', running, { op: 'adopt' }],
    ['RUNNING', 'RUNNING', running, null],
    // the wait ends
    ['RUNNING', 'RUNNING', exited(0), { op: 'exited', exitCode: 0 }],
    ['RUNNING', 'RUNNING', exited(3), { op: 'exited', exitCode: 3 }],
    ['RUNNING', 'PREPARING', exited(1), { op: 'exited', exitCode: 1 }],
    // ended: the container goes, then nothing
    ['RUNNING', 'FAILED', exited(3), { op: 'remove' }],
    ['RUNNING', 'COMPLETE', created, { op: 'remove' }],
    ['RUNNING', 'FAILED', undefined, null],
    ['RUNNING', 'REJECTED', undefined, null],
    // it ran, and its container is gone: never started again under the same task
    ['RUNNING', 'RUNNING', undefined, { op: 'lost' }],
    ['RUNNING', 'RUNNING', unknown, { op: 'lost' }],
    // not yet to run
    ['READY', 'ASSIGNED', undefined, null],
    ['READY', 'RUNNING', undefined, { op: 'lost' }],
    // to stop
    ['SHUTDOWN', 'RUNNING', running, { op: 'shutdown' }],
    ['SHUTDOWN', 'RUNNING', exited(0), { op: 'shutdown' }],
    ['SHUTDOWN', 'ASSIGNED', undefined, { op: 'shutdown' }],
    ['SHUTDOWN', 'FAILED', exited(1), { op: 'shutdown' }],
    ['SHUTDOWN', 'SHUTDOWN', undefined, null],
    ['SHUTDOWN', 'COMPLETE', undefined, null],
    ['REMOVE', 'RUNNING', running, { op: 'shutdown' }],
  ];
  it.each(cases)('desired %s, observed %s, container %j: %j', (desired, observed, container, step) => {
    expect(nextStep(desired, observed, container)).toEqual(step);
  });
});

describe('nextStep with a health check', () => {
  const cases: [State, State, Observed | undefined, Health, ReturnType<typeof nextStep>][] = [
    // running, and nobody checks it yet (adopted, or its image not looked at): start checking
    ['RUNNING', 'PREPARING', running, 'unknown', { op: 'watch' }],
    ['RUNNING', 'RUNNING', running, 'unknown', { op: 'watch' }],
    // STARTING until a check passes, RUNNING from then on
    ['RUNNING', 'PREPARING', running, 'starting', { op: 'adopt' }],
    ['RUNNING', 'STARTING', running, 'starting', null],
    ['RUNNING', 'STARTING', running, 'healthy', { op: 'adopt' }],
    ['RUNNING', 'RUNNING', running, 'healthy', null],
    // unhealthy: stopped and failed, whether it had passed a check or not
    ['RUNNING', 'STARTING', running, 'unhealthy', { op: 'unhealthy' }],
    ['RUNNING', 'RUNNING', running, 'unhealthy', { op: 'unhealthy' }],
    // already failed: the manager's shutdown stops what is left
    ['RUNNING', 'FAILED', running, 'unhealthy', null],
    ['SHUTDOWN', 'STARTING', running, 'starting', { op: 'shutdown' }],
    ['RUNNING', 'STARTING', exited(1), 'starting', { op: 'exited', exitCode: 1 }],
  ];
  it.each(cases)('desired %s, observed %s, container %j, health %s: %j', (desired, observed, container, health, step) => {
    expect(nextStep(desired, observed, container, health)).toEqual(step);
  });
});

describe('exitStatus', () => {
  const svc = service(1);
  const limited = (memory_bytes: number) => {
    const spec = svc.spec!.task_template!;
    return task(svc, 1, 'RUNNING', { spec: { ...spec, resources: { ...spec.resources!, limits: { ...spec.resources!.limits!, memory_bytes } } } });
  };

  it('is COMPLETE on 0 and FAILED with the code otherwise', () => {
    const t = limited(0);
    expect(exitStatus(t, 0, false)).toEqual({ state: 'COMPLETE', message: 'finished', container: { container_id: t.id, pid: 0, exit_code: 0 } });
    expect(exitStatus(t, 7, false)).toMatchObject({ state: 'FAILED', err: 'task: non-zero exit (7)', container: { exit_code: 7 } });
    expect(exitStatus(t, null, false)).toMatchObject({ state: 'FAILED', err: 'task: non-zero exit (-1)' });
  });

  it('names the memory limit when the kernel killed in the container for lack of memory', () => {
    expect(exitStatus(limited(32 * 1024 * 1024), 137, true).err).toBe('killed: out of memory (limit 32 MiB)');
    expect(exitStatus(limited(0), 137, true).err).toBe('killed: out of memory');
    expect(exitStatus(limited(32 * 1024 * 1024), 1, true).err).toBe('task: non-zero exit (1); a process in it was killed: out of memory (limit 32 MiB)');
  });
});

const IMAGE = resolvedImage(`sha256:${'a'.repeat(64)}`, 'shoal-test:latest', { entrypoint: ['/entry'], cmd: ['serve'], stopSignal: 'SIGQUIT' });

/**
 * One controller on a FakeRuntime, stepped by hand as the executor would: each step is taken with
 * the furthest state reported so far, and the container as the controller left it.
 */
function harness(t: Task__Output, images = new FakeImages([IMAGE]), registry?: () => RegistryClient, networks?: NetworkAttacher, drainMs = 0) {
  const runtime = new FakeRuntime();
  const containers = new Map<string, Observed>();
  const reports: StatusReport[] = [];
  const used = new Map<string, string>();
  const healthChanges: string[] = [];
  const controller = new TaskController(t, {
    runtime,
    images,
    registry,
    starts: new Semaphore(1),
    networks,
    drainMs,
    log: quietLogger(),
    registryAuth: () => undefined,
    logPath: (id) => `/logs/${id}.log`,
    container: (id) => containers.get(id),
    observe: (id, c) => (c ? containers.set(id, c) : containers.delete(id)),
    imageUsed: (id, image) => used.set(id, image),
    report: (_id, s) => reports.push(s),
    healthChanged: () => healthChanges.push(controller.task.id),
  });
  runtime.onExit((id, exitCode) => containers.set(id, exited(exitCode)));
  const observed = (): State => reports.at(-1)?.state ?? controller.task.status!.state;
  const step = async () => {
    const action = controller.next(observed());
    expect(action, 'a step to take').toBeDefined();
    await action!();
  };
  const states = () => reports.map((r) => r.state);
  /** A container an earlier daemon left, as the executor finds it at start. */
  const found = (status: 'running' | 'unknown') => {
    runtime.add(t.id, status);
    containers.set(t.id, { status, exitCode: null });
  };
  return { runtime, containers, reports, used, controller, observed, step, states, found, healthChanges };
}

describe('TaskController', () => {
  const svc = service(1);
  /** A task whose container spec differs from the service's in `container`. */
  const taskWith = (state: State, container: Partial<ContainerSpec__Output>, extra: Partial<Task__Output> = {}) =>
    task(svc, 1, state, { spec: { ...svc.spec!.task_template!, container: { ...svc.spec!.task_template!.container!, ...container } }, ...extra });

  it('prepares (image, bundle config), starts, waits for the exit, records it and removes the container', async () => {
    const h = harness(taskWith('ASSIGNED', { args: ['--port', '80'] }));
    const id = h.controller.task.id;
    await h.step();
    expect(h.runtime.calls).toEqual([`create ${id}`]);
    expect(h.runtime.configs.get(id)).toMatchObject({ args: ['/entry', '--port', '80'], layers: IMAGE.layers, logPath: `/logs/${id}.log` });
    expect(h.used.get(id)).toBe(IMAGE.id);
    expect(h.containers.get(id)).toEqual(created);
    expect(h.states()).toEqual(['PREPARING']);

    await h.step();
    expect(h.runtime.calls.at(-1)).toBe(`start ${id}`);
    expect(h.reports.at(-1)).toMatchObject({ state: 'RUNNING', container: { container_id: id, pid: (await h.runtime.state(id))!.pid } });
    expect(h.controller.next(h.observed())).toBeUndefined();

    h.runtime.exit(id, 0);
    await h.step();
    expect(h.reports.at(-1)).toMatchObject({ state: 'COMPLETE', message: 'finished', container: { exit_code: 0 } });
    expect(h.runtime.ids()).toEqual([]);
    expect(h.containers.has(id)).toBe(false);
    expect(h.controller.next(h.observed())).toBeUndefined();
  });

  it('records a non-zero exit as FAILED with its code', async () => {
    const h = harness(task(svc, 1, 'ASSIGNED'));
    await h.step();
    await h.step();
    h.runtime.exit(h.controller.task.id, 3);
    await h.step();
    expect(h.reports.at(-1)).toMatchObject({ state: 'FAILED', err: 'task: non-zero exit (3)', container: { exit_code: 3 } });
  });

  it('says when the kernel killed the container for lack of memory', async () => {
    const h = harness(task(svc, 1, 'ASSIGNED'));
    await h.step();
    await h.step();
    h.runtime.exit(h.controller.task.id, 137, true);
    await h.step();
    expect(h.reports.at(-1)).toMatchObject({ state: 'FAILED', err: 'killed: out of memory', container: { exit_code: 137 } });
    expect(h.runtime.ids()).toEqual([]);
  });

  it("shuts down with the task's stop signal and grace period, then removes the container", async () => {
    const t = taskWith('ASSIGNED', { stop_signal: 'SIGINT', stop_grace_period_ms: 3000 });
    const h = harness(t);
    await h.step();
    await h.step();
    h.controller.update({ ...t, desired_state: 'SHUTDOWN', status: { ...t.status!, state: 'RUNNING' } });
    await h.step();
    expect(h.runtime.calls.slice(-2)).toEqual([`stop ${t.id} SIGINT 3000`, `remove ${t.id}`]);
    expect(h.states().at(-1)).toBe('SHUTDOWN');
    expect(h.containers.has(t.id)).toBe(false);
    expect(h.controller.next(h.observed())).toBeUndefined();
  });

  it("falls back to the image's stop signal", async () => {
    const t = task(svc, 1, 'ASSIGNED');
    const h = harness(t);
    await h.step();
    await h.step();
    h.controller.update({ ...t, desired_state: 'SHUTDOWN' });
    await h.step();
    expect(h.runtime.calls).toContain(`stop ${t.id} SIGQUIT 10000`);
  });

  it('removes a container that was created but never started without waiting for a grace period', async () => {
    const t = task(svc, 1, 'ASSIGNED');
    const h = harness(t);
    await h.step();
    h.controller.update({ ...t, desired_state: 'SHUTDOWN' });
    await h.step();
    expect(h.runtime.calls).toEqual([`create ${t.id}`, `remove ${t.id}`]);
    expect(h.states()).toEqual(['PREPARING', 'SHUTDOWN']);
  });

  it('says SHUTDOWN for a task stopped before it had a container, and touches nothing', async () => {
    const h = harness(task(svc, 1, 'ASSIGNED', { desired_state: 'SHUTDOWN' }));
    await h.step();
    expect(h.states()).toEqual(['SHUTDOWN']);
    expect(h.runtime.calls).toEqual([]);
  });

  it('rejects a task whose image is not here and cannot be pulled', async () => {
    const h = harness(taskWith('ASSIGNED', { image: 'nosuch:image' }));
    await h.step();
    expect(h.reports.at(-1)).toMatchObject({ state: 'REJECTED', err: 'No such image: nosuch:image' });
    expect(h.runtime.calls).toEqual([]);
    expect(h.controller.next(h.observed())).toBeUndefined();
  });

  it('pulls an image that names a registry, and rejects the task with the reason when the pull fails', async () => {
    const ref = 'registry.example:5000/app:1';
    const app = resolvedImage(`sha256:${'b'.repeat(64)}`, ref);
    const registry = () => ({}) as RegistryClient;

    const ok = harness(taskWith('ASSIGNED', { image: ref }), new FakeImages([], new Map([[ref, app]])), registry);
    await ok.step();
    expect(ok.reports.map((r) => r.message)).toEqual(['pulling image', 'preparing']);
    expect(ok.used.get(ok.controller.task.id)).toBe(app.id);

    const missing = 'registry.example:5000/app:2';
    const bad = harness(taskWith('ASSIGNED', { image: missing }), new FakeImages(), registry);
    await bad.step();
    expect(bad.reports.at(-1)).toMatchObject({ state: 'REJECTED', err: `pulling image ${missing} failed: manifest unknown: ${missing}` });
    expect(bad.runtime.calls).toEqual([]);
  });

  it('fails a task whose container cannot be created, with the runtime’s reason, leaving nothing', async () => {
    const h = harness(task(svc, 1, 'ASSIGNED'));
    h.runtime.createError = new Error('exec: "no-such-command": executable file not found in $PATH');
    await h.step();
    expect(h.reports.at(-1)).toMatchObject({ state: 'FAILED', err: 'exec: "no-such-command": executable file not found in $PATH' });
    expect(h.runtime.ids()).toEqual([]);
    expect(h.containers.size).toBe(0);
  });

  it('redoes a container a crashed daemon left half-made', async () => {
    const t = task(svc, 1, 'PREPARING');
    const h = harness(t);
    h.found('unknown');
    await h.step();
    expect(h.runtime.calls).toEqual([`remove ${t.id}`, `create ${t.id}`]);
    expect(h.containers.get(t.id)).toEqual(created);
  });

  it('reports a running container it did not start as RUNNING, without touching it', async () => {
    const t = task(svc, 1, 'PREPARING');
    const h = harness(t);
    h.found('running');
    // first it looks up whether the image has a health check to resume (it has none)
    await h.step();
    expect(h.reports).toEqual([]);
    await h.step();
    expect(h.reports).toEqual([expect.objectContaining({ state: 'RUNNING', container: expect.objectContaining({ pid: (await h.runtime.state(t.id))!.pid }) })]);
    expect(h.runtime.calls).toEqual([]);
  });

  it('fails a task whose container vanished after it ran, and does not start it again', async () => {
    const h = harness(task(svc, 1, 'RUNNING'));
    await h.step();
    expect(h.reports).toEqual([{ state: 'FAILED', err: 'container disappeared while the node was down' }]);
    expect(h.runtime.calls).toEqual([]);
    expect(h.controller.next(h.observed())).toBeUndefined();
  });

  it('makes the container in the namespace its networks were set up in, and releases them after removing it, or when it could not be made', async () => {
    // The attacher writes into the runtime's call log, so the order of the two shows.
    let calls: string[] = [];
    const networks: NetworkAttacher = {
      attach: async (x) => (calls.push(`attach ${x.id}`), { netns: `/run/netns/${x.id}`, ip: '10.0.0.3' }),
      release: async (id) => void calls.push(`release ${id}`),
      outOfRotation: async () => undefined,
    };
    const h = harness(task(svc, 1, 'ASSIGNED'), undefined, undefined, networks);
    calls = h.runtime.calls;
    const id = h.controller.task.id;
    await h.step();
    expect(h.runtime.configs.get(id)).toMatchObject({ netns: `/run/netns/${id}`, ip: '10.0.0.3' });
    await h.step();
    await h.runtime.stop(id, 'SIGTERM', 0);
    await h.step();
    expect(calls).toEqual([`attach ${id}`, `create ${id}`, `start ${id}`, `stop ${id} SIGTERM 0`, `remove ${id}`, `release ${id}`]);

    const failing = harness(task(svc, 1, 'ASSIGNED'), undefined, undefined, networks);
    calls = failing.runtime.calls;
    failing.runtime.createError = new Error('runc create failed');
    await failing.step();
    const failed = failing.controller.task.id;
    expect(calls).toEqual([`attach ${failed}`, `create ${failed}`, `remove ${failed}`, `release ${failed}`]);
    expect(failing.reports.at(-1)).toMatchObject({ state: 'FAILED', err: 'runc create failed' });
  });
});

describe('TaskController stopping a load-balanced task', () => {
  /** Out of this node's rotation when the test says so. */
  let leaveRotation: () => void = () => {};
  const attacher: NetworkAttacher = {
    attach: async () => ({ netns: '/run/netns/x', ip: '10.0.0.3' }),
    release: async () => undefined,
    outOfRotation: () => new Promise<void>((resolve) => (leaveRotation = resolve)),
  };
  afterEach(() => vi.useRealTimers());

  it('leaves a serving task on a network running until this node has taken it out of rotation, then for the drain, before its signal; stops one on no network at once', async () => {
    const onNet = service(1);
    onNet.spec!.task_template!.networks = [{ target: 'net1' }];
    const serving = harness(task(onNet, 1, 'ASSIGNED'), undefined, undefined, attacher, 5000);
    await serving.step();
    await serving.step();
    expect(serving.observed()).toBe('RUNNING');
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    serving.controller.update({ ...serving.controller.task, desired_state: 'SHUTDOWN' });
    const stopping = serving.controller.next(serving.observed())!();
    // The balancers here are slow to drop it: the drain has not begun.
    await vi.advanceTimersByTimeAsync(8000);
    expect(serving.runtime.calls.some((c) => c.startsWith('stop'))).toBe(false);
    leaveRotation();
    await vi.advanceTimersByTimeAsync(4900);
    expect(serving.runtime.calls.some((c) => c.startsWith('stop'))).toBe(false);
    await vi.advanceTimersByTimeAsync(200);
    vi.useRealTimers();
    await stopping;
    expect(serving.runtime.calls.filter((c) => c.startsWith('stop') || c.startsWith('remove'))).toEqual([`stop ${serving.controller.task.id} SIGQUIT 10000`, `remove ${serving.controller.task.id}`]);

    const alone = harness(task(service(1), 1, 'ASSIGNED'), undefined, undefined, attacher, 60_000);
    await alone.step();
    await alone.step();
    alone.controller.update({ ...alone.controller.task, desired_state: 'SHUTDOWN' });
    await alone.controller.next(alone.observed())!();
    expect(alone.runtime.calls.some((c) => c.startsWith('stop'))).toBe(true);
  });
});

describe('TaskController with a health check', () => {
  const svc = service(1);
  const check = (c: Partial<HealthConfig__Output> = {}): HealthConfig__Output => ({
    test: ['CMD-SHELL', 'probe'],
    interval_ms: 1000,
    timeout_ms: 500,
    start_period_ms: 0,
    retries: 2,
    ...c,
  });
  const withCheck = (state: State, healthcheck: HealthConfig__Output | null, extra: Partial<Task__Output> = {}) =>
    task(svc, 1, state, { spec: { ...svc.spec!.task_template!, container: { ...svc.spec!.task_template!.container!, healthcheck } }, ...extra });
  const failing = { exitCode: 1, output: 'starting up\nnot ready', timedOut: false };

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is STARTING until a check passes, then RUNNING and healthy; the check runs in the container every interval', async () => {
    const h = harness(withCheck('ASSIGNED', check()));
    const id = h.controller.task.id;
    await h.step();
    await h.step();
    expect(h.reports.at(-1)).toMatchObject({ state: 'STARTING', health: 'starting', container: { container_id: id } });
    expect(h.controller.next(h.observed())).toBeUndefined();
    h.runtime.execOutcomes.set(id, failing);
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.runtime.execs).toEqual([`${id} /bin/sh -c probe`]);
    expect(h.controller.next(h.observed())).toBeUndefined();

    h.runtime.execOutcomes.delete(id);
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.healthChanges).toEqual([id]);
    await h.step();
    expect(h.reports.at(-1)).toMatchObject({ state: 'RUNNING', health: 'healthy' });
    expect(h.controller.next(h.observed())).toBeUndefined();
    await vi.advanceTimersByTimeAsync(3000);
    expect(h.runtime.execs).toHaveLength(5);
  });

  it('stops an unhealthy container with its stop signal and grace period and fails the task, saying why; checks end', async () => {
    const h = harness(withCheck('ASSIGNED', check()));
    const id = h.controller.task.id;
    await h.step();
    await h.step();
    await vi.advanceTimersByTimeAsync(1000);
    await h.step();
    expect(h.states()).toEqual(['PREPARING', 'STARTING', 'RUNNING']);

    h.runtime.execOutcomes.set(id, failing);
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.controller.next(h.observed())).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1000);
    await h.step();
    expect(h.runtime.calls.slice(-2)).toEqual([`stop ${id} SIGQUIT 10000`, `remove ${id}`]);
    expect(h.reports.at(-1)).toEqual({
      state: 'FAILED',
      message: 'unhealthy',
      err: 'unhealthy container: 2 health checks in a row failed; the last: exit status 1: not ready',
      health: 'unhealthy',
    });
    const checks = h.runtime.execs.length;
    await vi.advanceTimersByTimeAsync(5000);
    expect(h.runtime.execs).toHaveLength(checks);
    expect(h.controller.next(h.observed())).toBeUndefined();
  });

  it('says a check that ran past its timeout timed out', async () => {
    const h = harness(withCheck('ASSIGNED', check({ retries: 1 })));
    await h.step();
    await h.step();
    h.runtime.execOutcomes.set(h.controller.task.id, { exitCode: 137, output: '', timedOut: true });
    await vi.advanceTimersByTimeAsync(1000);
    await h.step();
    expect(h.reports.at(-1)).toMatchObject({ state: 'FAILED', err: 'unhealthy container: 1 health check in a row failed; the last: timed out after 500ms' });
  });

  it('resumes checking a container an earlier daemon started: a task reported RUNNING stays healthy until checks fail', async () => {
    const t = withCheck('RUNNING', check());
    const h = harness(t);
    h.found('running');
    await h.step();
    expect(h.reports).toEqual([]);
    expect(h.controller.next(h.observed())).toBeUndefined();
    h.runtime.execOutcomes.set(t.id, failing);
    await vi.advanceTimersByTimeAsync(2000);
    await h.step();
    expect(h.reports.at(-1)).toMatchObject({ state: 'FAILED', health: 'unhealthy' });
  });

  it('resumes a task still STARTING with the start period it had', async () => {
    const startedAt = new Date(Date.now() - 4000).toISOString();
    const t = withCheck('STARTING', check({ start_period_ms: 5000 }), { status: { state: 'STARTING', timestamp: startedAt, message: '', err: '', container: null, health: 'starting' } });
    const h = harness(t);
    h.found('running');
    h.runtime.execOutcomes.set(t.id, failing);
    await h.step();
    // the first check falls after the start period: it and the next count
    await vi.advanceTimersByTimeAsync(2000);
    await h.step();
    expect(h.reports.at(-1)).toMatchObject({ state: 'FAILED', err: expect.stringMatching(/^unhealthy container: 2 health checks/) });
  });

  it('takes the image’s HEALTHCHECK when the service names none, and --no-healthcheck turns it off', async () => {
    const images = new FakeImages([{ ...IMAGE, config: { ...IMAGE.config, healthcheck: { test: ['CMD', '/bin/ok'], interval_ms: 700, timeout_ms: 0, start_period_ms: 0, retries: 0 } } }]);
    const h = harness(withCheck('ASSIGNED', null), images);
    await h.step();
    await h.step();
    expect(h.states().at(-1)).toBe('STARTING');
    await vi.advanceTimersByTimeAsync(700);
    expect(h.runtime.execs).toEqual([`${h.controller.task.id} /bin/ok`]);

    const off = harness(withCheck('ASSIGNED', { test: ['NONE'], interval_ms: 0, timeout_ms: 0, start_period_ms: 0, retries: 0 }), images);
    await off.step();
    await off.step();
    expect(off.reports.at(-1)).toMatchObject({ state: 'RUNNING' });
    expect(off.reports.at(-1)!.health).toBeUndefined();
    await vi.advanceTimersByTimeAsync(5000);
    expect(off.runtime.execs).toEqual([]);
  });

  it('stops checking when the container exits or the task is shut down', async () => {
    const h = harness(withCheck('ASSIGNED', check()));
    const id = h.controller.task.id;
    await h.step();
    await h.step();
    h.runtime.exit(id, 2);
    await h.step();
    expect(h.reports.at(-1)).toMatchObject({ state: 'FAILED', err: 'task: non-zero exit (2)' });
    await vi.advanceTimersByTimeAsync(5000);
    expect(h.runtime.execs).toEqual([]);

    const t = withCheck('ASSIGNED', check());
    const s = harness(t);
    await s.step();
    await s.step();
    s.controller.update({ ...t, desired_state: 'SHUTDOWN' });
    await s.step();
    expect(s.states().at(-1)).toBe('SHUTDOWN');
    await vi.advanceTimersByTimeAsync(5000);
    expect(s.runtime.execs).toEqual([]);
  });
});
