import type { Task__Output } from '../../gen/shoal/v1/Task';
import type { Logger } from '../../common/logger';
import { isTerminal, publishesPorts, rank, type State } from '../../common/tasks';
import type { ResolvedImage } from '../../images/store';
import { parseReference } from '../../images/reference';
import type { RegistryClient } from '../../images/registry/client';
import type { RegistryAuth } from '../../images/registry/registries';
import { containerConfig, stopPolicy } from '../container-config';
import type { Semaphore } from '../semaphore';
import { effectiveCheck, unhealthyError, type HealthCheck, type HealthStatus } from './health';
import { HealthMonitor } from './health-monitor';
import { exitStatus, nextStep, type Health, type Observed, type StatusReport, type Step } from './lifecycle';
import type { ContainerConfig, ContainerRuntime } from './runtime';

/** Puts a task's container on its overlay networks (worker/container-networks.ts), or a fake in tests. */
export interface NetworkAttacher {
  /** The namespace to make the container in; undefined when the task joins no network. */
  attach(task: Task__Output): Promise<Pick<ContainerConfig, 'netns' | 'ip' | 'resolvConf'> | undefined>;
  /** Removes what attach made; a no-op when there is nothing. */
  release(taskId: string): Promise<void>;
  /** Resolves once this node balances no connection to the task any more (or after capMs). */
  outOfRotation(taskId: string, capMs: number): Promise<void>;
}

/** Where images come from: the node's ImageStore, or plain data in tests. */
export interface ImageSource {
  resolve(ref: string): Promise<ResolvedImage | null>;
  pull(ref: string, registry: RegistryClient): Promise<unknown>;
}

/** What a controller shares with the executor that runs it. */
export interface ControllerContext {
  readonly runtime: ContainerRuntime;
  readonly images: ImageSource;
  /** The registry client for a pull, given the task's credentials; absent: images must be loaded. */
  readonly registry?: (auth?: RegistryAuth) => RegistryClient;
  /** Container creates in flight at once, across tasks. */
  readonly starts: Semaphore;
  /** Absent: containers get loopback only. */
  readonly networks?: NetworkAttacher;
  /** How long a load-balanced task keeps running after it is told to stop, before its signal (see shutdown). */
  readonly drainMs: number;
  readonly log: Logger;
  registryAuth(serviceId: string): RegistryAuth | undefined;
  logPath(taskId: string): string;
  container(taskId: string): Observed | undefined;
  /** Records the container as seen now; undefined once it is gone. */
  observe(taskId: string, container: Observed | undefined): void;
  /** The image the task's container was made from, so collection leaves it alone. */
  imageUsed(taskId: string, imageId: string): void;
  /** Never backwards: a report behind what is known already is dropped. */
  report(taskId: string, status: StatusReport): void;
  /** The task's health status changed (its health check's clock, not a change the executor saw). */
  healthChanged(taskId: string): void;
}

/**
 * Drives one task's container through prepare → start → wait → shutdown → remove. The executor
 * asks it for the next action each time something changed; nextStep decides, this class acts.
 */
export class TaskController {
  /** The container's health check; undefined until looked up (it may come from the image). */
  private check: HealthCheck | null | undefined;
  /** Runs the check while the container runs. */
  private monitor: HealthMonitor | undefined;

  constructor(
    private current: Task__Output,
    private readonly ctx: ControllerContext,
  ) {}

  get task(): Task__Output {
    return this.current;
  }

  /** A newer copy of the task from the dispatcher (desired state, status). */
  update(task: Task__Output): void {
    this.current = task;
  }

  /** The action that takes the task one step on, or undefined when there is nothing to do. */
  next(observed: State): (() => Promise<void>) | undefined {
    const step = nextStep(this.current.desired_state, observed, this.ctx.container(this.current.id), this.health());
    return step ? () => this.take(step, observed) : undefined;
  }

  /** The task is no longer assigned here: its health check stops (the executor removes its container). */
  close(): void {
    this.unwatch();
  }

  private health(): Health {
    if (this.monitor) return this.monitor.current.status;
    return this.check === null ? 'none' : 'unknown';
  }

  private take(step: Step, observed: State): Promise<void> {
    switch (step.op) {
      case 'prepare':
        return this.prepare();
      case 'start':
        return this.start();
      case 'adopt':
        return this.adopt();
      case 'watch':
        return this.watch(observed);
      case 'unhealthy':
        return this.unhealthy();
      case 'exited':
        return this.exited(step.exitCode);
      case 'lost':
        return this.lost();
      case 'shutdown':
        return this.shutdown(observed);
      case 'remove':
        return this.remove();
    }
  }

  private report(status: StatusReport): void {
    this.ctx.report(this.current.id, status);
  }

  private async prepare(): Promise<void> {
    const { runtime, images } = this.ctx;
    const task = this.current;
    // Pulled outside the start slots, so a slow registry holds up no container whose image is here.
    const ref = task.spec!.container!.image;
    if (this.ctx.registry && pullable(ref) && !(await images.resolve(ref).catch(() => null))) {
      this.report({ state: 'PREPARING', message: 'pulling image' });
      try {
        await images.pull(ref, this.ctx.registry(this.ctx.registryAuth(task.service_id)));
      } catch (err) {
        return this.report({ state: 'REJECTED', err: `pulling image ${ref} failed: ${(err as Error).message}` });
      }
    }
    await this.ctx.starts.run(async () => {
      const existing = await runtime.state(task.id);
      if (existing?.status === 'running') return this.adopt();
      // A container left half-made by a crashed daemon is redone from scratch.
      if (existing) await this.remove();
      this.report({ state: 'PREPARING', message: 'preparing' });
      let image: ResolvedImage | null;
      try {
        image = await images.resolve(ref);
      } catch (err) {
        return this.report({ state: 'REJECTED', err: `image ${ref} cannot be used: ${(err as Error).message}` });
      }
      if (!image) return this.report({ state: 'REJECTED', err: `No such image: ${ref}` });
      this.ctx.imageUsed(task.id, image.id);
      try {
        const joined = await this.ctx.networks?.attach(task);
        await runtime.create({ ...containerConfig(task, image, this.ctx.logPath(task.id)), ...joined });
        this.ctx.observe(task.id, { status: 'created', exitCode: null });
      } catch (err) {
        await this.fail(err as Error);
      }
    });
  }

  private async start(): Promise<void> {
    const id = this.current.id;
    try {
      const { pid } = await this.ctx.runtime.start(id);
      // It may have exited already, and the exit been seen.
      if (this.ctx.container(id)?.status === 'created') this.ctx.observe(id, { status: 'running', exitCode: null });
      const check = await this.healthCheck();
      const container = { container_id: id, pid, exit_code: 0 };
      if (!check) return this.report({ state: 'RUNNING', message: 'started', container });
      this.watchWith(check, 'starting', Date.now());
      this.report({ state: 'STARTING', message: 'started; waiting for a health check to pass', health: 'starting', container });
    } catch (err) {
      await this.fail(err as Error);
    }
  }

  private async fail(err: Error): Promise<void> {
    await this.ctx.runtime.remove(this.current.id).catch(() => undefined);
    await this.ctx.networks?.release(this.current.id).catch(() => undefined);
    this.ctx.observe(this.current.id, undefined);
    this.report({ state: 'FAILED', err: err.message });
  }

  /** Reports a running container as it stands: STARTING while its health check has not passed, else RUNNING. */
  private async adopt(): Promise<void> {
    const id = this.current.id;
    const state = await this.ctx.runtime.state(id);
    if (state?.status !== 'running') return;
    const container = { container_id: id, pid: state.pid, exit_code: 0 };
    const health = this.health();
    if (health === 'starting') return this.report({ state: 'STARTING', message: 'waiting for a health check to pass', health, container });
    this.report({ state: 'RUNNING', message: 'started', container, ...(health === 'healthy' ? { health } : {}) });
  }

  /** The service's check over the image's; looked up once (a task's spec never changes). */
  private async healthCheck(): Promise<HealthCheck | null> {
    if (this.check === undefined) {
      const c = this.current.spec!.container!;
      // Only a spec that leaves the test to the image needs the image.
      const image = c.healthcheck?.test.length ? null : await this.ctx.images.resolve(c.image).catch(() => null);
      this.check = effectiveCheck(c.healthcheck, image?.config.healthcheck);
    }
    return this.check;
  }

  /**
   * Starts checking a running container this controller has not been checking: one an earlier
   * daemon started. Health is not kept across a restart of the daemon, so it resumes from what
   * was reported: a task reported RUNNING was healthy and stays so until `retries` checks fail;
   * one still STARTING keeps its start period, counted from when it was reported starting.
   */
  private async watch(observed: State): Promise<void> {
    const check = await this.healthCheck();
    if (!check || this.monitor) return;
    if (rank(observed) >= rank('RUNNING')) return this.watchWith(check, 'healthy', Date.now());
    const status = this.current.status;
    this.watchWith(check, 'starting', (status?.state === 'STARTING' && Date.parse(status.timestamp)) || Date.now());
  }

  private watchWith(check: HealthCheck, initial: HealthStatus, startedAtMs: number): void {
    this.unwatch();
    this.monitor = new HealthMonitor(this.ctx.runtime, this.current.id, check, initial, startedAtMs, () => this.ctx.healthChanged(this.current.id));
  }

  private unwatch(): void {
    this.monitor?.stop();
    this.monitor = undefined;
  }

  /**
   * As Swarm does, an unhealthy container is stopped (its stop signal, then the grace period) and
   * removed as at a shutdown, and its task fails: the restart policy replaces it.
   */
  private async unhealthy(): Promise<void> {
    const health = this.monitor!.current;
    await this.shutdown('FAILED');
    this.report({ state: 'FAILED', message: 'unhealthy', err: unhealthyError(health), health: 'unhealthy' });
  }

  private async exited(exitCode: number | null): Promise<void> {
    this.unwatch();
    // read before remove(), which takes the cgroup and its counters with it
    const oom = exitCode !== 0 && (await this.ctx.runtime.oomKilled(this.current.id).catch(() => false));
    this.report(exitStatus(this.current, exitCode, oom));
    await this.remove();
  }

  private async lost(): Promise<void> {
    this.report({ state: 'FAILED', err: 'container disappeared while the node was down' });
  }

  private async shutdown(observed: State): Promise<void> {
    this.unwatch();
    const task = this.current;
    const container = this.ctx.container(task.id);
    // Only a running command gets its grace period: remove() kills anything else there is.
    if (container?.status === 'running') {
      // The push that tells this node to stop a serving task takes it out of every node's VIPs and
      // published ports too: once this node has applied it, a moment's wait lets the others apply
      // it before the process goes, so that no new connection is sent to a process on its way out.
      if (observed === 'RUNNING' && this.balanced()) {
        await this.ctx.networks!.outOfRotation(task.id, ROTATION_WAIT_MS);
        this.ctx.log.debug({ taskId: task.id, drainMs: this.ctx.drainMs }, 'task out of this node\'s balancers; draining before its stop signal');
        await new Promise((r) => setTimeout(r, this.ctx.drainMs));
      }
      const image = await this.ctx.images.resolve(task.spec!.container!.image).catch(() => null);
      const { signal, graceMs } = stopPolicy(task, image);
      await this.ctx.runtime.stop(task.id, signal, graceMs);
    }
    if (!isTerminal(observed)) this.report({ state: 'SHUTDOWN', message: 'shutdown' });
    if (container) await this.remove();
  }

  /** Reached through a VIP or a published port: on a network, or publishing. */
  private balanced(): boolean {
    return !!this.ctx.networks && ((this.current.spec?.networks.length ?? 0) > 0 || publishesPorts(this.current.endpoint));
  }

  private async remove(): Promise<void> {
    await this.ctx.runtime.remove(this.current.id);
    await this.ctx.networks?.release(this.current.id);
    this.ctx.observe(this.current.id, undefined);
  }
}

/** How long a stopping task waits for this node's balancers to drop it before its drain begins regardless. */
const ROTATION_WAIT_MS = 10_000;

/** Only references that name a registry host are pulled; others (`shoal-test:latest`) must be loaded. */
function pullable(ref: string): boolean {
  try {
    const parsed = parseReference(ref);
    return parsed.registry !== 'docker.io' || ref.startsWith('docker.io/') || ref.startsWith('index.docker.io/');
  } catch {
    return false;
  }
}
