import type { Task__Output } from '../../gen/shoal/v1/Task';
import type { TaskStatus } from '../../gen/shoal/v1/TaskStatus';
import { isTerminal, rank, wantsRunning, type State } from '../../common/tasks';
import { formatBytes } from '../../common/units';
import type { HealthStatus } from './health';
import type { ContainerState } from './runtime';

export type StatusReport = Partial<TaskStatus> & { state: State };

/** A task's container as the executor last saw it; undefined when there is none. */
export type Observed = Pick<ContainerState, 'status' | 'exitCode'>;

/**
 * A running task's health as its controller knows it: it has no check ('none'); it may have one
 * nobody checks yet ('unknown': just adopted, or its image not looked at); or its check's status.
 */
export type Health = 'none' | 'unknown' | HealthStatus;

/**
 * One step of a task's lifecycle, prepare → start → wait → shutdown → remove. Waiting is passive:
 * the runtime's exit event turns a running container into a stopped one, and `exited` follows.
 */
export type Step =
  /** Image here (pulled if need be), bundle written, `runc create`; a leftover container is redone. */
  | { op: 'prepare' }
  | { op: 'start' }
  /** Running, but not yet known to run: reported so (a daemon restarted between start and report). */
  | { op: 'adopt' }
  /** Running, with a health check (or maybe one) nobody runs: look it up, start checking. */
  | { op: 'watch' }
  /** Its health check failed `retries` times in a row: stop it and fail the task, as Swarm does. */
  | { op: 'unhealthy' }
  | { op: 'exited'; exitCode: number | null }
  /** It ran, and its container is gone: nothing recorded how it ended. */
  | { op: 'lost' }
  /** Stop (signal, grace, kill) whatever runs, say SHUTDOWN unless it already ended, remove. */
  | { op: 'shutdown' }
  /** The task has ended; its container goes. */
  | { op: 'remove' };

/**
 * The next step for a task given its desired state, its furthest observed state (the manager's
 * or ours), its container and its health. Null when it is where it should be. Level-triggered:
 * the same inputs always give the same step, so a restarted daemon carries on from what it finds.
 * A task with a health check is STARTING until a check passes, and RUNNING only from then on.
 */
export function nextStep(desired: State, observed: State, container: Observed | undefined, health: Health = 'none'): Step | null {
  if (!wantsRunning(desired)) return container || !isTerminal(observed) ? { op: 'shutdown' } : null;
  if (container?.status === 'running') {
    if (isTerminal(observed)) return null;
    if (health === 'unknown') return { op: 'watch' };
    if (health === 'unhealthy') return { op: 'unhealthy' };
    return rank(observed) < rank(health === 'starting' ? 'STARTING' : 'RUNNING') ? { op: 'adopt' } : null;
  }
  if (isTerminal(observed)) return container ? { op: 'remove' } : null;
  if (container?.status === 'stopped') {
    // Stopped with no exit code, before it was ever reported started: its create was cut short (the
    // daemon stopped mid-way) and none of the task ran, so it is made again rather than failed.
    if (container.exitCode === null && rank(observed) < rank('STARTING')) return { op: 'prepare' };
    return { op: 'exited', exitCode: container.exitCode };
  }
  // A task runs in one container once: one that vanished is not started again behind the manager's back.
  if (rank(observed) >= rank('RUNNING')) return { op: 'lost' };
  if (desired !== 'RUNNING') return null;
  return container?.status === 'created' ? { op: 'start' } : { op: 'prepare' };
}

/** What a task's end says: COMPLETE on 0, else FAILED with the code, and the memory limit when the kernel killed in it for lack of memory. */
export function exitStatus(task: Task__Output, exitCode: number | null, oomKilled: boolean): StatusReport {
  const code = exitCode ?? -1;
  const container = { container_id: task.id, pid: 0, exit_code: code };
  if (code === 0) return { state: 'COMPLETE', message: 'finished', container };
  return { state: 'FAILED', message: 'started', err: exitError(code, oomKilled, task.spec!.resources?.limits?.memory_bytes ?? 0), container };
}

function exitError(code: number, oomKilled: boolean, memoryLimit: number): string {
  if (!oomKilled) return `task: non-zero exit (${code})`;
  const oom = `out of memory${memoryLimit > 0 ? ` (limit ${formatBytes(memoryLimit).replace(/(?<=\d)(?=[A-Z])/, ' ')})` : ''}`;
  // 137 = 128 + SIGKILL: the kernel's OOM killer took the container's main process
  return code === 137 ? `killed: ${oom}` : `task: non-zero exit (${code}); a process in it was killed: ${oom}`;
}
