import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Task__Output } from '../gen/shoal/v1/Task';
import type { TaskStatus } from '../gen/shoal/v1/TaskStatus';
import type { Logger } from '../common/logger';
import { isTerminal, now, rank, wantsRunning, type State } from '../common/tasks';
import { formatBytes } from '../common/units';
import type { ImageStore, ResolvedImage } from '../images/store';
import { parseReference } from '../images/reference';
import type { RegistryClient } from '../images/registry/client';
import type { RegistryAuth } from '../images/registry/registries';
import type { ContainerState, Runtime } from './runtime/runtime';
import { containerConfig, stopPolicy } from './container-config';
import { logFileTask } from './runtime/log-rotation';
import { Semaphore } from './semaphore';

export type Report = (taskId: string, status: TaskStatus) => void;

export interface ExecutorOptions {
  runtime: Runtime;
  images: ImageStore;
  /**
   * The registry client for a pull, given the task's credentials (--with-registry-auth), if any.
   * Pulls images that are not here and name a registry; without it, images must be loaded.
   */
  registry?: (auth?: RegistryAuth) => RegistryClient;
  /** Task logs live here as <task id>.log and outlive the daemon. */
  logDir: string;
  /** Container starts in flight at once; runc is CPU-bound, so about twice the cores. */
  concurrency: number;
  report: Report;
  log: Logger;
}

type Local = Pick<ContainerState, 'status' | 'exitCode'>;

/**
 * Converges this node's containers to its assigned task set. Level-triggered: every call to
 * converge() (new assignments, a container exit, an action finishing) re-derives what to do
 * from the task set and what runc says, so a restarted daemon simply picks up where it was.
 */
export class Executor {
  private tasks = new Map<string, Task__Output>();
  /** Registry credentials by service id, from the dispatcher; held in memory only, never logged. */
  private registryAuth = new Map<string, RegistryAuth>();
  private haveAssignments = false;
  /** Containers as runc and conmon's exit files last told us. */
  private readonly containers = new Map<string, Local>();
  /** The furthest state reported per task, so nothing is reported twice or backwards. */
  private readonly reported = new Map<string, State>();
  /** Tasks with an action in flight; converge() skips them until it ends. */
  private readonly busy = new Set<string>();
  private readonly imageOf = new Map<string, string>();
  private readonly starts: Semaphore;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly opts: ExecutorOptions) {
    this.starts = new Semaphore(opts.concurrency);
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
    this.unsubscribe?.();
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
    for (const id of this.containers.keys()) if (!this.imageOf.has(id) && this.tasks.has(id)) return false;
    return true;
  }

  /** Image references of the tasks assigned here that are to run: collection must leave those alone. */
  wantedImages(): string[] {
    return [...this.tasks.values()].filter((t) => wantsRunning(t.desired_state)).map((t) => t.spec!.container!.image);
  }

  setAssignments(tasks: Task__Output[], registryAuth: Record<string, RegistryAuth> = {}): void {
    this.tasks = new Map(tasks.map((t) => [t.id, t]));
    this.registryAuth = new Map(Object.entries(registryAuth));
    this.haveAssignments = true;
    for (const id of this.reported.keys()) if (!this.tasks.has(id)) this.reported.delete(id);
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
    if (!this.haveAssignments) return;
    for (const task of this.tasks.values()) {
      if (this.busy.has(task.id)) continue;
      const action = this.nextAction(task);
      if (action) this.run(task.id, action);
    }
    for (const id of this.containers.keys()) {
      if (!this.tasks.has(id) && !this.busy.has(id)) this.run(id, () => this.removeUnassigned(id));
    }
    this.removeStaleLogs();
  }

  private nextAction(task: Task__Output): (() => Promise<void>) | undefined {
    const container = this.containers.get(task.id);
    const observed = this.observed(task);
    if (wantsRunning(task.desired_state)) {
      if (container?.status === 'stopped') {
        return isTerminal(observed) ? () => this.removeContainer(task.id) : () => this.recordExit(task, container.exitCode);
      }
      if (task.desired_state === 'RUNNING' && !isTerminal(observed) && container?.status !== 'running') return () => this.start(task);
      if (container?.status === 'running' && rank(observed) < rank('RUNNING')) return () => this.adopt(task);
      if (!container && observed === 'RUNNING') {
        return async () => this.report(task.id, { state: 'FAILED', err: 'container disappeared while the node was down' });
      }
      return undefined;
    }
    if (container) return () => this.stop(task);
    if (!isTerminal(observed)) return async () => this.report(task.id, { state: 'SHUTDOWN', message: 'shutdown' });
    return undefined;
  }

  private observed(task: Task__Output): State {
    const mine = this.reported.get(task.id);
    const theirs = task.status!.state;
    return mine && rank(mine) > rank(theirs) ? mine : theirs;
  }

  private run(taskId: string, action: () => Promise<void>): void {
    this.busy.add(taskId);
    action()
      .catch((err) => this.opts.log.error({ err, taskId }, 'task action failed'))
      .finally(() => {
        this.busy.delete(taskId);
        this.converge();
      });
  }

  private async start(task: Task__Output): Promise<void> {
    // Pulled outside the start slots, so a slow registry holds up no container whose image is here.
    const ref = task.spec!.container!.image;
    if (this.opts.registry && pullable(ref) && !(await this.opts.images.resolve(ref).catch(() => null))) {
      this.report(task.id, { state: 'PREPARING', message: 'pulling image' });
      try {
        await this.opts.images.pull(ref, this.opts.registry(this.registryAuth.get(task.service_id)));
      } catch (err) {
        return this.report(task.id, { state: 'REJECTED', err: `pulling image ${ref} failed: ${(err as Error).message}` });
      }
    }
    await this.starts.run(async () => {
      const { runtime } = this.opts;
      const existing = await runtime.state(task.id);
      if (existing?.status === 'running') return this.adopt(task);
      // A container left half-made by a crashed daemon is redone from scratch.
      if (existing) await runtime.remove(task.id);
      this.report(task.id, { state: 'PREPARING', message: 'preparing' });
      let image: ResolvedImage | null;
      try {
        image = await this.opts.images.resolve(ref);
      } catch (err) {
        return this.report(task.id, { state: 'REJECTED', err: `image ${ref} cannot be used: ${(err as Error).message}` });
      }
      if (!image) return this.report(task.id, { state: 'REJECTED', err: `No such image: ${ref}` });
      this.imageOf.set(task.id, image.id);
      const config = containerConfig(task, image, this.logPath(task.id));
      try {
        await runtime.create(config);
        this.containers.set(task.id, { status: 'created', exitCode: null });
        const { pid } = await runtime.start(task.id);
        if (this.containers.get(task.id)?.status === 'created') this.containers.set(task.id, { status: 'running', exitCode: null });
        this.report(task.id, { state: 'RUNNING', message: 'started', container: { container_id: task.id, pid, exit_code: 0 } });
      } catch (err) {
        await runtime.remove(task.id).catch(() => undefined);
        this.containers.delete(task.id);
        this.report(task.id, { state: 'FAILED', err: (err as Error).message });
      }
    });
  }

  private async adopt(task: Task__Output): Promise<void> {
    const state = await this.opts.runtime.state(task.id);
    if (state?.status !== 'running') return;
    this.report(task.id, { state: 'RUNNING', message: 'started', container: { container_id: task.id, pid: state.pid, exit_code: 0 } });
  }

  private async recordExit(task: Task__Output, exitCode: number | null): Promise<void> {
    const code = exitCode ?? -1;
    const container = { container_id: task.id, pid: 0, exit_code: code };
    if (code === 0) this.report(task.id, { state: 'COMPLETE', message: 'finished', container });
    else {
      // read before removeContainer, which takes the cgroup and its counters with it
      const oom = await this.opts.runtime.oomKilled(task.id).catch(() => false);
      this.report(task.id, { state: 'FAILED', message: 'started', err: exitError(code, oom, task.spec!.resources?.limits?.memory_bytes ?? 0), container });
    }
    await this.removeContainer(task.id);
  }

  private async stop(task: Task__Output): Promise<void> {
    const container = this.containers.get(task.id);
    if (container && container.status !== 'stopped') {
      const image = await this.opts.images.resolve(task.spec!.container!.image).catch(() => null);
      const { signal, graceMs } = stopPolicy(task, image);
      await this.opts.runtime.stop(task.id, signal, graceMs);
    }
    if (!isTerminal(this.observed(task))) this.report(task.id, { state: 'SHUTDOWN', message: 'shutdown' });
    await this.removeContainer(task.id);
  }

  private async removeUnassigned(id: string): Promise<void> {
    this.opts.log.info({ taskId: id }, 'removing container of a task no longer assigned to this node');
    const c = this.containers.get(id);
    if (c && c.status !== 'stopped') await this.opts.runtime.stop(id, 'SIGTERM', 10_000);
    await this.removeContainer(id);
  }

  private async removeContainer(id: string): Promise<void> {
    await this.opts.runtime.remove(id);
    this.containers.delete(id);
    this.imageOf.delete(id);
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
      if (id !== null && !this.tasks.has(id) && !this.containers.has(id) && !this.busy.has(id)) fs.rmSync(path.join(this.opts.logDir, f), { force: true });
    }
  }

  logPath(taskId: string): string {
    return path.join(this.opts.logDir, `${taskId}.log`);
  }

  private report(taskId: string, status: Partial<TaskStatus> & { state: State }): void {
    const prev = this.reported.get(taskId);
    if (prev && rank(prev) >= rank(status.state)) return;
    this.reported.set(taskId, status.state);
    this.opts.report(taskId, { message: '', err: '', timestamp: now(), ...status });
  }
}

/** Why a task failed: its exit code, and the memory limit when the kernel killed in it for lack of memory. */
export function exitError(code: number, oomKilled: boolean, memoryLimit: number): string {
  if (!oomKilled) return `task: non-zero exit (${code})`;
  const oom = `out of memory${memoryLimit > 0 ? ` (limit ${formatBytes(memoryLimit).replace(/(?<=\d)(?=[A-Z])/, ' ')})` : ''}`;
  // 137 = 128 + SIGKILL: the kernel's OOM killer took the container's main process
  return code === 137 ? `killed: ${oom}` : `task: non-zero exit (${code}); a process in it was killed: ${oom}`;
}

/** Only references that name a registry host are pulled; others (`shoal-test:latest`) must be loaded. */
function pullable(ref: string): boolean {
  try {
    const parsed = parseReference(ref);
    return parsed.registry !== 'docker.io' || ref.startsWith('docker.io/') || ref.startsWith('index.docker.io/');
  } catch {
    return false;
  }
}
