import { status as grpcStatus } from '@grpc/grpc-js';
import type { Service__Output } from '../gen/shoal/v1/Service';
import type { Task__Output } from '../gen/shoal/v1/Task';
import type { UpdateStatus__Output } from '../gen/shoal/v1/UpdateStatus';
import { ShoalError } from '../common/errors';
import { taskName, wantsRunning } from '../common/tasks';
import type { Client } from './client';
import { UNPLACEABLE_BEFORE_GIVING_UP_MS } from './converge';

const POLL_MS = 200;

export interface RolloutProgress {
  /** Per slot, in slot order: its task's name and where it stands ("updated", "preparing", …). */
  slots: [string, string][];
  updated: number;
  /** Set once the rollout has ended: completed, or the status that stopped it. */
  ended?: UpdateStatus__Output;
  /** Why a new task cannot be placed, while one cannot: its slot stays in flight until it can. */
  unplaceable?: string;
}

const newestFirst = (a: Task__Output, b: Task__Output) => b.created_at.localeCompare(a.created_at) || b.id.localeCompare(a.id);

/**
 * Where a rolling update or rollback stands, slot by slot; pure. A slot is updated once its
 * task of the current spec has run for the monitor period (or was already current when the
 * rollout began); a slot still on the old spec is "waiting". With no rollout status yet and no
 * task left on an old spec, there is nothing to roll out.
 */
export function rolloutProgress(service: Service__Output, tasks: Task__Output[], nowMs: number): RolloutProgress {
  const status = service.update_status;
  const rollback = !!status?.state.startsWith('rollback');
  const monitorMs = (rollback ? service.spec!.rollback_config : service.spec!.update_config)?.monitor_ms ?? 0;
  const startedMs = status ? Date.parse(status.started_at) || 0 : Infinity;
  const bySlot = new Map<string, Task__Output[]>();
  for (const t of tasks) if (wantsRunning(t.desired_state)) bySlot.set(taskName(t), [...(bySlot.get(taskName(t)) ?? []), t]);
  const progress: RolloutProgress = { slots: [], updated: 0 };
  for (const [name, live] of bySlot) {
    const current = live.filter((t) => t.spec_version === service.spec_version).sort(newestFirst)[0];
    if (current && !current.node_id && current.schedule_error) progress.unplaceable ??= `task ${name} cannot be placed: ${current.schedule_error}`;
    let where: string;
    if (!current) where = 'waiting (old spec)';
    else if (Date.parse(current.created_at) < startedMs) where = 'updated';
    else if (current.status!.state !== 'RUNNING' || current.desired_state !== 'RUNNING') where = current.status!.state.toLowerCase();
    else where = nowMs - Date.parse(current.status!.timestamp) >= monitorMs ? 'updated' : 'running, monitoring';
    if (where === 'updated') progress.updated++;
    progress.slots.push([name, where]);
  }
  progress.slots.sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }));
  const done = ['completed', 'paused', 'rollback_completed', 'rollback_paused'];
  if (status && done.includes(status.state)) progress.ended = status;
  else if (!status && progress.slots.every(([, where]) => where !== 'waiting (old spec)')) {
    progress.ended = { state: 'completed', started_at: '', completed_at: '', message: 'nothing to roll out' };
  }
  return progress;
}

/**
 * Follows a rollout the daemon has begun (or is about to), printing each slot's progress on
 * stderr as it changes, until it has ended. Returns its final status when it completed (an
 * update or a rollback); throws, saying why, when it paused.
 */
export async function waitForRollout(client: Client, serviceId: string, quiet: boolean): Promise<UpdateStatus__Output> {
  const shown = new Map<string, string>();
  let lastState = '';
  // A new task no node can take would keep its slot in flight for ever: say so, as the wait for convergence does.
  let unplaceableSince = 0;
  for (;;) {
    const service = await client.getService(serviceId);
    const { tasks } = await client.listTasks({ service: serviceId });
    const p = rolloutProgress(service, tasks, Date.now());
    const state = service.update_status?.state ?? '';
    if (!quiet) {
      if (state !== lastState && state) process.stderr.write(`${state.replace('_', ' ')}: ${service.update_status!.message}\n`);
      for (const [name, where] of p.slots) if (shown.get(name) !== where) process.stderr.write(`${name}: ${where} (${p.updated}/${p.slots.length} updated)\n`);
    }
    lastState = state;
    shown.clear();
    for (const [name, where] of p.slots) shown.set(name, where);
    const ended = p.ended;
    if (ended?.state === 'paused' || ended?.state === 'rollback_paused') {
      const what = ended.state === 'paused' ? 'update' : 'rollback';
      throw new ShoalError(grpcStatus.FAILED_PRECONDITION, `${what} of service ${service.spec!.name} paused: ${ended.message}`);
    }
    if (ended) return ended;
    const unplaceable = p.unplaceable;
    unplaceableSince = unplaceable ? unplaceableSince || Date.now() : 0;
    if (unplaceable && Date.now() - unplaceableSince >= UNPLACEABLE_BEFORE_GIVING_UP_MS) {
      throw new ShoalError(grpcStatus.FAILED_PRECONDITION, `service ${service.spec!.name} is not converging: ${unplaceable}`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
