import type { Service__Output } from '../gen/shoal/v1/Service';
import type { Task__Output } from '../gen/shoal/v1/Task';
import { ShoalError } from '../common/errors';
import { endedByItself, isTerminal, taskName, wantsRunning } from '../common/tasks';
import type { Client } from './client';
import { status } from '@grpc/grpc-js';

const POLL_MS = 100;
// A slot whose tasks failed this many times since the wait began is reported as not converging.
const FAILURES_BEFORE_GIVING_UP = 3;
// How long tasks must stay unplaceable, with nothing stopping that could free room, before the
// wait gives up: the scheduler may not yet have seen the room a task that just stopped left.
export const UNPLACEABLE_BEFORE_GIVING_UP_MS = 5000;
const GLOBAL_EMPTY_AFTER_MS = 3000;
// How long a converged state must hold before the wait believes it (Docker's monitor is 5 s).
const CONVERGED_HOLD_MS = 500;

export interface Progress {
  running: number;
  desired: number;
  /** Tasks asked to stop that still have a container. */
  stopping: number;
  /** Tasks whose container runs but whose health check has not passed yet: not running until it does. */
  starting: number;
  converged: boolean;
  /** Set when waiting longer cannot help: one sentence saying why. */
  stuck?: string;
  /** Set when every missing task is one no node can take, and nothing stopping could make room: why. */
  unplaceable?: string;
}

/** Reads where a service stands against its spec; pure, so the rules are testable on plain data. */
export function assess(service: Service__Output, tasks: Task__Output[], failures: Map<number, number>, waitedMs = Infinity): Progress {
  const global = !!service.spec!.mode!.global;
  const live = tasks.filter((t) => wantsRunning(t.desired_state) && t.spec_version === service.spec_version);
  // A global service wants one task per eligible node: as many as the orchestrator made.
  const desired = global ? live.length : (service.spec!.mode!.replicated?.replicas ?? 0);
  const current = global ? live : live.filter((t) => t.slot <= desired);
  const running = current.filter((t) => t.desired_state === 'RUNNING' && t.status!.state === 'RUNNING').length;
  const stopping = tasks.filter((t) => !wantsRunning(t.desired_state) && t.node_id && !isTerminal(t.status!.state)).length;
  // Until the orchestrator has made a global service's tasks, 0 of 0 is not convergence; if no node
  // is eligible it stays 0, and the wait ends once that has had time to show.
  const made = !global || desired > 0 || waitedMs >= GLOBAL_EMPTY_AFTER_MS;
  const starting = current.filter((t) => t.desired_state === 'RUNNING' && t.status!.state === 'STARTING').length;
  const progress: Progress = { running, desired, stopping, starting, converged: made && running === desired && stopping === 0 };
  if (progress.converged) return progress;

  const notRunning = current.filter((t) => t.status!.state !== 'RUNNING');
  const final = notRestarted(service, tasks, desired);
  const hopeless = [...failures].filter(([slot, n]) => n >= FAILURES_BEFORE_GIVING_UP && !current.some((t) => t.slot === slot && t.status!.state === 'RUNNING'));
  if (final.length && final.length + running >= desired && !notRunning.some((t) => !isTerminal(t.status!.state))) {
    progress.stuck = `${final.length} task(s) ended and the restart policy does not restart them: ${describe(final[0])}`;
  } else if (hopeless.length && hopeless.length + running >= desired) {
    const slot = hopeless[0][0];
    const last = tasks.filter((t) => t.slot === slot && t.status!.err).sort((a, b) => b.created_at.localeCompare(a.created_at))[0];
    progress.stuck = `task ${last ? describe(last) : `slot ${slot} keeps failing`} (failed ${hopeless[0][1]} times; still retrying per the restart policy)`;
  }
  const unplaced = notRunning.filter((t) => !t.node_id && t.schedule_error);
  if (unplaced.length && unplaced.length === notRunning.length && unplaced.length + running >= desired && stopping === 0) {
    progress.unplaceable = `task ${taskName(unplaced[0])} cannot be placed: ${unplaced[0].schedule_error}`;
  }
  return progress;
}

/**
 * Tasks the restart policy does not restart: the orchestrator set them to SHUTDOWN after they
 * ended by themselves and made nothing newer in their slot (a restart is created first).
 */
function notRestarted(service: Service__Output, tasks: Task__Output[], desired: number): Task__Output[] {
  const newest = new Map<number, Task__Output>();
  for (const t of tasks) {
    const n = newest.get(t.slot);
    if (!n || t.created_at.localeCompare(n.created_at) > 0 || (t.created_at === n.created_at && t.id > n.id)) newest.set(t.slot, t);
  }
  return [...newest.values()].filter(
    (t) => t.slot <= desired && t.spec_version === service.spec_version && !wantsRunning(t.desired_state) && endedByItself(t.status!.state),
  );
}

const describe = (t: Task__Output) => `${taskName(t)}: ${t.status!.err || t.status!.message || t.status!.state.toLowerCase()}`;

/**
 * Waits until the service runs its desired replicas and nothing it asked to stop is left,
 * printing progress (and each task error once) to stderr. Throws when it cannot converge.
 */
export async function waitForConvergence(client: Client, serviceId: string, quiet: boolean): Promise<void> {
  const tty = process.stderr.isTTY && !quiet;
  const seenErrors = new Set<string>();
  const failures = new Map<number, number>();
  let last = '';
  // The daemon's time of the change, so tasks it made for it compare on one clock.
  let started = '';
  let unplaceableSince = 0;
  let convergedSince = 0;
  const since = Date.now();
  for (;;) {
    const service = await client.getService(serviceId);
    started ||= service.updated_at;
    const { tasks } = await client.listTasks({ service: serviceId });
    for (const t of tasks) {
      const failed = t.status!.state === 'FAILED' || t.status!.state === 'REJECTED';
      if (failed && t.created_at >= started && !seenErrors.has(t.id)) failures.set(t.slot, (failures.get(t.slot) ?? 0) + 1);
      const err = t.status!.err;
      if (err && !seenErrors.has(t.id) && t.created_at >= started) {
        seenErrors.add(t.id);
        if (!quiet) process.stderr.write(`${tty ? '\r\x1b[K' : ''}${taskName(t)}: ${t.status!.state.toLowerCase()}: ${err}\n`);
      }
    }
    const p = assess(service, tasks, failures, Date.now() - since);
    const extra = [p.starting ? `${p.starting} starting (waiting for a health check to pass)` : '', p.stopping ? `${p.stopping} stopping` : ''].filter(Boolean);
    const line = `overall progress: ${p.running} out of ${p.desired} tasks running${extra.map((e) => `, ${e}`).join('')}`;
    if (!quiet && line !== last) process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
    last = line;
    // A task that exits at once is Running for a moment: convergence counts once it has held.
    convergedSince = p.converged ? convergedSince || Date.now() : 0;
    if (p.converged && Date.now() - convergedSince >= CONVERGED_HOLD_MS) {
      if (!quiet) process.stderr.write(`${tty ? '\n' : ''}verify: service ${service.spec!.name} converged\n`);
      return;
    }
    unplaceableSince = p.unplaceable ? unplaceableSince || Date.now() : 0;
    const stuck = p.stuck ?? (p.unplaceable && Date.now() - unplaceableSince >= UNPLACEABLE_BEFORE_GIVING_UP_MS ? p.unplaceable : undefined);
    if (stuck) {
      if (tty) process.stderr.write('\n');
      throw new ShoalError(status.FAILED_PRECONDITION, `service ${service.spec!.name} is not converging: ${stuck}`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
