import type { Service__Output } from '../../gen/shoal/v1/Service';
import type { Task__Output } from '../../gen/shoal/v1/Task';
import type { UpdateConfig__Output } from '../../gen/shoal/v1/UpdateConfig';
import type { UpdateStatus__Output } from '../../gen/shoal/v1/UpdateStatus';
import { endedByItself, taskName, wantsRunning } from '../../common/tasks';
import { FAILURE_ACTIONS, validateUpdateConfig } from '../validate';
import { samePorts } from '../published-ports';

export type UpdateState = 'updating' | 'paused' | 'completed' | 'rollback_started' | 'rollback_paused' | 'rollback_completed';
export type UpdateOrder = 'stop-first' | 'start-first';

/** States in which the updater replaces slots; the paused ones wait for the operator. */
const ACTIVE: ReadonlySet<string> = new Set(['updating', 'rollback_started']);
const PAUSED: ReadonlySet<string> = new Set(['paused', 'rollback_paused']);

/** The updater's decision for one pass: pure, from the service, its tasks per slot and the time. */
export interface UpdateDecision {
  /** Slots (their keys) whose outdated task is replaced in this pass. */
  replace: Set<string>;
  order: UpdateOrder;
  /** The service to store, when its update status changes or (rolling back) its spec does. */
  service?: Service__Output;
  /** When to look again: a monitored task comes of age, or the delay between batches ends. */
  wakeAt?: number;
}

/** Whether the service's rollout is a rollback, which follows its rollback config. */
export const isRollback = (status: UpdateStatus__Output | null | undefined): boolean => !!status?.state.startsWith('rollback');

/** The config the service's current rollout follows, with defaults for a service stored without one. */
export function rolloutConfig(service: Service__Output): UpdateConfig__Output {
  const rollback = isRollback(service.update_status);
  const stored = rollback ? service.spec?.rollback_config : service.spec?.update_config;
  return stored ?? validateUpdateConfig({}, rollback ? 'rollback_config' : 'update_config', FAILURE_ACTIONS);
}

/**
 * The service with its previous spec restored (keeping its name and endpoint spec: the name and
 * the published ports have keys of their own, which only the control API claims) and
 * the spec it had kept as the previous one, so a second rollback undoes the first. The restored
 * spec keeps its old spec_version, so the tasks still made from it are current again, unless
 * they were made with other ports than those kept: then it is a version past both.
 */
export function rolledBack(service: Service__Output, at: string, message: string): Service__Output {
  const spec = { ...service.previous_spec!, name: service.spec!.name, endpoint_spec: service.spec!.endpoint_spec };
  return {
    ...service,
    spec,
    spec_version: samePorts(spec, service.previous_spec!) ? service.previous_spec_version : Math.max(service.spec_version, service.previous_spec_version) + 1,
    previous_spec: service.spec,
    previous_spec_version: service.spec_version,
    update_status: { state: 'rollback_started', started_at: at, completed_at: '', message },
    updated_at: at,
  };
}

const newestFirst = (a: Task__Output, b: Task__Output) => b.created_at.localeCompare(a.created_at) || b.id.localeCompare(a.id);
const bySlotKey = (a: string, b: string) => Number(a) - Number(b) || a.localeCompare(b);

interface Rollout {
  /** Slots whose live task is outdated and that have no new one yet, those not serving first. */
  dirty: string[];
  /** Slots whose new task is not running yet, nor failed: the next batch waits for them. */
  inFlight: number;
  /** Slots whose new task runs but has not yet run for `monitor`: the rollout is not complete. */
  monitored: number;
  /** New tasks of this rollout that ended by themselves (failed, or exited early). */
  failures: Task__Output[];
  /** When the last new task of this rollout started running (ms; 0: none yet). */
  lastRunningAt: number;
  wakeAt?: number;
}

/**
 * Where each slot stands in a rollout that started at `startedMs`. As in Swarm, a batch is done
 * once its new tasks run, and the next one starts `delay` later; each new task is watched for the
 * monitor period meanwhile, and the rollout completes when every one has run that long. A new
 * task that ended by itself is a failure, and its slot is done with (the restart policy, not the
 * updater, restarts it). A new task that ends after its monitor period but while the rollout
 * still runs counts too: once a task has ended, when it started running is no longer stored.
 */
function survey(service: Service__Output, slots: Map<string, Task__Output[]>, startedMs: number, monitorMs: number, nowMs: number): Rollout {
  const version = service.spec_version;
  const r: Rollout = { dirty: [], inFlight: 0, monitored: 0, failures: [], lastRunningAt: 0 };
  // Replacing a slot whose old task is not running (pending, say) costs no serving replica.
  const serving = new Set<string>();
  for (const [key, tasks] of slots) {
    const live = tasks.filter((t) => wantsRunning(t.desired_state));
    const fresh = tasks.filter((t) => t.spec_version === version && Date.parse(t.created_at) >= startedMs);
    const failed = fresh.filter((t) => endedByItself(t.status!.state));
    r.failures.push(...failed);
    const current = live.filter((t) => t.spec_version === version).sort(newestFirst)[0];
    if (!current) {
      if (live.length) r.dirty.push(key);
      if (live.some((t) => t.status!.state === 'RUNNING')) serving.add(key);
      continue;
    }
    if (failed.length || Date.parse(current.created_at) < startedMs) continue;
    if (current.desired_state !== 'RUNNING' || current.status!.state !== 'RUNNING') {
      r.inFlight++;
      continue;
    }
    const runningAt = Date.parse(current.status!.timestamp);
    r.lastRunningAt = Math.max(r.lastRunningAt, runningAt);
    if (runningAt + monitorMs > nowMs) {
      r.monitored++;
      r.wakeAt = Math.min(r.wakeAt ?? Infinity, runningAt + monitorMs);
    }
  }
  r.dirty.sort((a, b) => Number(serving.has(a)) - Number(serving.has(b)) || bySlotKey(a, b));
  return r;
}

const describe = (t: Task__Output) => `task ${taskName(t)} (${t.id}) ${t.status!.state.toLowerCase()}${t.status!.err ? `: ${t.status!.err}` : ''}`;

/**
 * Decides one step of a rolling update or rollback: which outdated slots to replace now, and
 * what the service's update status becomes. Pure; `slots` maps each slot's key (its number, or
 * a global service's node id) to all of its tasks.
 *
 * A rollout begins when a slot holds an outdated live task and none is under way; it replaces
 * `parallelism` slots (0: all) at a time, starts the next batch `delay` after the new tasks of
 * the batch before run, and is complete when no slot is outdated, in flight or still watched.
 * When more than `max_failure_ratio` of the slots got a new task that failed, it pauses, goes
 * on, or (an update with a previous spec) rolls back. Everything it needs is in the service and
 * its tasks, so a new leader takes over a rollout where the last one left it.
 */
export function decideUpdate(service: Service__Output, slots: Map<string, Task__Output[]>, nowMs: number): UpdateDecision {
  const config = rolloutConfig(service);
  const decision: UpdateDecision = { replace: new Set(), order: config.order as UpdateOrder };
  const at = new Date(nowMs).toISOString();
  let status = service.update_status ?? null;
  if (status && PAUSED.has(status.state)) return decision;

  const underWay = !!status && ACTIVE.has(status.state);
  const startedMs = underWay ? Date.parse(status!.started_at) || 0 : nowMs;
  const r = survey(service, slots, startedMs, config.monitor_ms ?? 0, nowMs);
  decision.wakeAt = r.wakeAt;
  if (!underWay) {
    if (!r.dirty.length) return decision;
    status = { state: 'updating', started_at: at, completed_at: '', message: 'update in progress' };
  }
  const word = isRollback(status) ? 'rollback' : 'update';
  const withStatus = (state: UpdateState, message: string, completedAt = ''): Service__Output => ({
    ...service,
    update_status: { state, started_at: status!.started_at, completed_at: completedAt, message },
  });

  const total = Math.max(1, slots.size);
  if (r.failures.length / total > config.max_failure_ratio && config.failure_action !== 'continue') {
    const last = [...r.failures].sort(newestFirst)[0];
    const why = `${describe(last)}; ${r.failures.length} of ${total} ${word === 'update' ? 'updated' : 'rolled back'} tasks failed, more than the max failure ratio ${config.max_failure_ratio}`;
    if (word === 'update' && config.failure_action === 'rollback' && service.previous_spec) {
      decision.service = rolledBack(service, at, why);
    } else {
      const noPrevious = config.failure_action === 'rollback' ? '; there is no previous spec to roll back to' : '';
      decision.service = withStatus(word === 'update' ? 'paused' : 'rollback_paused', `${why}${noPrevious}`);
    }
    return { replace: new Set(), order: decision.order, service: decision.service };
  }

  if (!r.dirty.length && !r.inFlight && !r.monitored) {
    // A completed rollback keeps the reason it was started for.
    decision.service = word === 'update' ? withStatus('completed', 'update completed', at) : withStatus('rollback_completed', status!.message, at);
    return decision;
  }
  if (!underWay) decision.service = withStatus('updating', status!.message);
  if (r.inFlight) return decision;
  const startAt = r.lastRunningAt ? r.lastRunningAt + config.delay_ms : nowMs;
  if (startAt > nowMs) {
    decision.wakeAt = Math.min(decision.wakeAt ?? Infinity, startAt);
    return decision;
  }
  const parallelism = config.parallelism || r.dirty.length;
  for (const key of r.dirty.slice(0, parallelism)) decision.replace.add(key);
  return decision;
}
