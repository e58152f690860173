import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Task__Output } from '../gen/shoal/v1/Task';
import type { TaskStatus } from '../gen/shoal/v1/TaskStatus';
import type { Logger } from '../common/logger';
import { isTerminal, now, rank, wantsRunning, type State } from '../common/tasks';
import type { RegistryClient } from '../images/registry/client';
import type { RegistryAuth } from '../images/registry/registries';
import type { Observed, StatusReport } from './exec/lifecycle';
import type { ContainerRuntime } from './exec/runtime';
import { TaskController, type ControllerContext, type ImageSource } from './exec/task-controller';
import type { ContainerNetworks } from './container-networks';
import type { NodeNetworks__Output } from '../gen/shoal/v1/NodeNetworks';
import { logFileTask } from './runtime/log-rotation';
import { Semaphore } from './semaphore';

/** Enough for every node to rewrite its tables on a loaded machine (a VIP change rewrites one per container). */
const DRAIN_MS = 2000;

export type Report = (taskId: string, status: TaskStatus) => void;

export interface ExecutorOptions {
  runtime: ContainerRuntime;
  images: ImageSource;
  /**
   * The registry client for a pull, given the task's credentials (--with-registry-auth), if any.
   * Pulls images that are not here and name a registry; without it, images must be loaded.
   */
  registry?: (auth?: RegistryAuth) => RegistryClient;
  /** Task logs live here as <task id>.log and outlive the daemon. */
  logDir: string;
  /** Container starts in flight at once; runc is CPU-bound, so about twice the cores. */
  concurrency: number;
  /** Puts containers on overlay networks; absent, they get loopback only. */
  networks?: ContainerNetworks;
  /**
   * How long a task reached through a VIP or a published port runs on after it is told to stop
   * (default 2 s): the time every node has to take it out of its balancers.
   */
  drainMs?: number;
  report: Report;
  log: Logger;
}

/**
 * Converges this node's containers to its assigned task set, one TaskController per task.
 * Level-triggered: every call to converge() (new assignments, a container exit, an action
 * finishing) re-derives each task's next step from the task and what the runtime says, so a
 * restarted daemon simply picks up where it was.
 */
export class Executor {
  private controllers = new Map<string, TaskController>();
  /** Registry credentials by service id, from the dispatcher; held in memory only, never logged. */
  private registryAuth = new Map<string, RegistryAuth>();
  private haveAssignments = false;
  /** Containers as the runtime and its exit events last told us, assigned or not. */
  private readonly containers = new Map<string, Observed>();
  /** The furthest state reported per task, so nothing is reported twice or backwards. */
  private readonly reported = new Map<string, State>();
  /** Tasks with an action in flight; converge() skips them until it ends. */
  private readonly busy = new Set<string>();
  private readonly imageOf = new Map<string, string>();
  private readonly context: ControllerContext;
  private unsubscribe: (() => void) | undefined;
  /** Set by close(): actions in flight end, and no new one starts (the daemon is stopping). */
  private closed = false;
  /**
   * Whether a log or network namespace may have become stale since the last sweep: only at
   * start, when a task leaves the assignments, or when an action on a task that left them (or
   * ended) finishes. Sweeping on every converge read both directories, synchronously, after
   * every step of every container.
   */
  private sweepDue = true;

  constructor(private readonly opts: ExecutorOptions) {
    this.context = {
      runtime: opts.runtime,
      images: opts.images,
      registry: opts.registry,
      starts: new Semaphore(opts.concurrency),
      networks: opts.networks,
      drainMs: opts.drainMs ?? DRAIN_MS,
      log: opts.log,
      registryAuth: (serviceId) => this.registryAuth.get(serviceId),
      logPath: (taskId) => this.logPath(taskId),
      container: (taskId) => this.containers.get(taskId),
      observe: (taskId, container) => this.observe(taskId, container),
      imageUsed: (taskId, imageId) => this.imageOf.set(taskId, imageId),
      report: (taskId, status) => this.report(taskId, status),
      healthChanged: () => this.converge(),
    };
  }

  /** Learns what containers exist from an earlier run; nothing is stopped until assignments arrive. */
  async init(): Promise<void> {
    fs.mkdirSync(this.opts.logDir, { recursive: true });
    for (const c of await this.opts.runtime.list()) this.containers.set(c.id, { status: c.status, exitCode: c.exitCode });
    this.unsubscribe = this.opts.runtime.onExit((id, exitCode) => {
      this.containers.set(id, { status: 'stopped', exitCode });
      this.converge();
    });
    this.opts.log.info({ containers: this.containers.size }, 'executor found existing containers');
  }

  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    for (const c of this.controllers.values()) c.close();
    this.opts.networks?.close();
  }

  /** The overlay state of this node's tasks, as the dispatcher last sent it; before the assignments it comes with. */
  setNetworks(state: NodeNetworks__Output): void {
    this.opts.networks?.setState(state);
  }

  /** Images used by containers that exist on this node. */
  imageInUse(imageId: string): boolean {
    for (const [taskId, id] of this.imageOf) if (id === imageId && this.containers.has(taskId)) return true;
    return false;
  }

  /**
   * Whether every container's image is known, so imageInUse() can be trusted: not before the first
   * assignments, nor while adopted containers' images are being looked up. Collection waits for it.
   */
  imagesSettled(): boolean {
    if (!this.haveAssignments) return this.containers.size === 0;
    for (const id of this.containers.keys()) if (!this.imageOf.has(id) && this.controllers.has(id)) return false;
    return true;
  }

  /** Image references of the tasks assigned here that are to run: collection must leave those alone. */
  wantedImages(): string[] {
    return [...this.controllers.values()].map((c) => c.task).filter((t) => wantsRunning(t.desired_state)).map((t) => t.spec!.container!.image);
  }

  setAssignments(tasks: Task__Output[], registryAuth: Record<string, RegistryAuth> = {}): void {
    const controllers = new Map<string, TaskController>();
    for (const t of tasks) {
      const c = this.controllers.get(t.id);
      c?.update(t);
      controllers.set(t.id, c ?? new TaskController(t, this.context));
    }
    for (const [id, c] of this.controllers) {
      if (controllers.has(id)) continue;
      c.close();
      this.sweepDue = true;
    }
    this.controllers = controllers;
    this.registryAuth = new Map(Object.entries(registryAuth));
    this.haveAssignments = true;
    for (const id of this.reported.keys()) if (!controllers.has(id)) this.reported.delete(id);
    // Containers adopted from an earlier run still pin their image against `image rm`.
    for (const t of tasks) if (this.containers.has(t.id) && !this.imageOf.has(t.id)) void this.rememberImage(t);
    this.converge();
  }

  private async rememberImage(task: Task__Output): Promise<void> {
    const image = await this.opts.images.resolve(task.spec!.container!.image).catch(() => null);
    // '' when its image is gone: known, and nothing to protect.
    if (this.containers.has(task.id)) this.imageOf.set(task.id, image?.id ?? '');
  }

  converge(): void {
    if (!this.haveAssignments || this.closed) return;
    for (const [id, controller] of this.controllers) {
      if (this.busy.has(id)) continue;
      const action = controller.next(this.observed(id));
      if (action) this.run(id, action);
    }
    for (const id of this.containers.keys()) {
      if (!this.controllers.has(id) && !this.busy.has(id)) this.run(id, () => this.removeUnassigned(id));
    }
    if (this.sweepDue) {
      this.sweepDue = false;
      this.removeStaleLogs();
      this.releaseStaleNetworks();
    }
  }

  /**
   * A container's network namespace goes with it (remove); one whose task ended or left while
   * shoald was down has no step left to remove it, so it goes here.
   */
  private releaseStaleNetworks(): void {
    if (!this.opts.networks) return;
    const keep = new Set([...this.busy, ...this.containers.keys()]);
    for (const [id] of this.controllers) if (!isTerminal(this.observed(id))) keep.add(id);
    this.opts.networks.sweep(keep).catch((err) => this.opts.log.warn({ err }, 'removing stale container networks failed'));
  }

  /** The furthest state known for a task: the manager's, or a later one reported since. */
  private observed(taskId: string): State {
    const mine = this.reported.get(taskId);
    const theirs = this.controllers.get(taskId)?.task.status?.state ?? 'NEW';
    return mine && rank(mine) > rank(theirs) ? mine : theirs;
  }

  private run(taskId: string, action: () => Promise<void>): void {
    this.busy.add(taskId);
    action()
      .catch((err) => this.opts.log.error({ err, taskId }, 'task action failed'))
      .finally(() => {
        this.busy.delete(taskId);
        if (!this.controllers.has(taskId) || isTerminal(this.observed(taskId))) this.sweepDue = true;
        this.converge();
      });
  }

  private async removeUnassigned(id: string): Promise<void> {
    this.opts.log.info({ taskId: id }, 'removing container of a task no longer assigned to this node');
    const c = this.containers.get(id);
    if (c && c.status !== 'stopped') await this.opts.runtime.stop(id, 'SIGTERM', 10_000);
    await this.opts.runtime.remove(id);
    await this.opts.networks?.release(id);
    this.observe(id, undefined);
  }

  private observe(taskId: string, container: Observed | undefined): void {
    if (container) return void this.containers.set(taskId, container);
    this.containers.delete(taskId);
    this.imageOf.delete(taskId);
  }

  /** Logs are kept while the manager keeps the task (its history); then they go too. */
  private removeStaleLogs(): void {
    let files: string[];
    try {
      files = fs.readdirSync(this.opts.logDir);
    } catch {
      return;
    }
    for (const f of files) {
      // not conmon's <id>.log.tmp: removed between its creation and its rename, conmon would exit
      const id = logFileTask(f);
      if (id !== null && !this.controllers.has(id) && !this.containers.has(id) && !this.busy.has(id)) fs.rmSync(path.join(this.opts.logDir, f), { force: true });
    }
  }

  logPath(taskId: string): string {
    return path.join(this.opts.logDir, `${taskId}.log`);
  }

  private report(taskId: string, status: StatusReport): void {
    if (rank(this.observed(taskId)) >= rank(status.state)) return;
    this.reported.set(taskId, status.state);
    this.opts.report(taskId, { message: '', err: '', timestamp: now(), ...status });
  }
}
