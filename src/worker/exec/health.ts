import type { HealthConfig__Output } from '../../gen/shoal/v1/HealthConfig';

/** Docker's defaults for what neither the service nor the image sets. */
export const DEFAULT_HEALTH_INTERVAL_MS = 30_000;
export const DEFAULT_HEALTH_TIMEOUT_MS = 30_000;
export const DEFAULT_HEALTH_RETRIES = 3;

/** The check a task's container runs, every field settled. */
export interface HealthCheck {
  /** Run inside the container, as its own process runs (user, env, working dir). */
  argv: string[];
  intervalMs: number;
  timeoutMs: number;
  startPeriodMs: number;
  retries: number;
}

/**
 * The check for a container: the service's over the image's HEALTHCHECK, field by field, as
 * Docker merges them (an empty test or a 0 takes the image's), then Docker's defaults. Null when
 * neither has one, the service says NONE, or the image's test is of a kind Docker ignores too.
 */
export function effectiveCheck(spec: HealthConfig__Output | null | undefined, image: HealthConfig__Output | null | undefined): HealthCheck | null {
  const test = spec?.test.length ? spec.test : (image?.test ?? []);
  const field = (k: 'interval_ms' | 'timeout_ms' | 'start_period_ms' | 'retries') => Number(spec?.[k] || 0) || Number(image?.[k] || 0);
  let argv: string[];
  if (test[0] === 'CMD') argv = test.slice(1);
  else if (test[0] === 'CMD-SHELL') argv = ['/bin/sh', '-c', test.slice(1).join(' ')];
  else return null;
  if (!argv[0]?.trim() || (test[0] === 'CMD-SHELL' && !argv[2].trim())) return null;
  return {
    argv,
    intervalMs: field('interval_ms') || DEFAULT_HEALTH_INTERVAL_MS,
    timeoutMs: field('timeout_ms') || DEFAULT_HEALTH_TIMEOUT_MS,
    startPeriodMs: field('start_period_ms'),
    retries: field('retries') || DEFAULT_HEALTH_RETRIES,
  };
}

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

export interface HealthState {
  status: HealthStatus;
  /** Failed checks in a row that counted (those in the start period, before any passed, do not). */
  failingStreak: number;
  /** What the last failed check said; '' until one fails. */
  lastFailure: string;
}

export interface ProbeResult {
  ok: boolean;
  /** Why it failed: "exit status 1: …", "timed out after 2s", or the error that kept it from running. */
  failure: string;
  /** When the check started (ms). */
  atMs: number;
}

/**
 * The container's health after one more check, as Docker's daemon judges it: a pass makes it
 * healthy and clears the streak; a failure counts unless the container is still starting (has
 * never passed) within its start period; `retries` counted failures in a row make it unhealthy.
 * Unlike a plain Docker container, unhealthy is final here: as in Swarm, the task then fails.
 */
export function afterProbe(state: HealthState, result: ProbeResult, check: HealthCheck, startedAtMs: number): HealthState {
  if (state.status === 'unhealthy') return state;
  if (result.ok) return { status: 'healthy', failingStreak: 0, lastFailure: state.lastFailure };
  const grace = state.status === 'starting' && result.atMs - startedAtMs < check.startPeriodMs;
  const failingStreak = grace ? state.failingStreak : state.failingStreak + 1;
  return { status: failingStreak >= check.retries ? 'unhealthy' : state.status, failingStreak, lastFailure: result.failure };
}

/** The task's error once it is unhealthy. */
export const unhealthyError = (state: HealthState): string =>
  `unhealthy container: ${state.failingStreak} health check${state.failingStreak === 1 ? '' : 's'} in a row failed; the last: ${state.lastFailure}`;
