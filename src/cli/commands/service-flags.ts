import { readFileSync } from 'node:fs';
import { type Command, InvalidArgumentError } from 'commander';
import type { ServiceSpec__Output } from '../../gen/shoal/v1/ServiceSpec';
import type { ContainerSpec__Output } from '../../gen/shoal/v1/ContainerSpec';
import { invalidArgument } from '../../common/errors';
import { parseBytes, parseCpus, parseDuration } from '../../common/units';

/** Commander argument parsers: each names its flag in the error. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

export function integer(flag: string) {
  return (v: string) => {
    if (!/^-?\d+$/.test(v.trim())) throw new InvalidArgumentError(`${flag} must be a non-negative integer, got "${v}"`);
    return Number(v);
  };
}

const wrap =
  <T>(parse: (v: string) => T) =>
  (v: string) => {
    try {
      return parse(v);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };

/** --mode: replicated or global. */
export function serviceMode(v: string): 'replicated' | 'global' {
  if (v !== 'replicated' && v !== 'global') throw new InvalidArgumentError(`--mode must be replicated or global, got "${v}"`);
  return v;
}

/** A repeatable `spread=node.labels.NAME` placement preference; the daemon checks the label part. */
export function placementPrefs(flag: string) {
  return (v: string, previous: string[] = []) => {
    const m = /^spread=(.+)$/.exec(v.trim());
    if (!m) throw new InvalidArgumentError(`${flag} must be spread=node.labels.<name>, got "${v}"`);
    return [...previous, m[1].trim()];
  };
}

export const bytes = (flag: string) => wrap((v) => parseBytes(v, flag));
export const cpus = (flag: string) => wrap((v) => parseCpus(v, flag));
export const duration = (flag: string) => wrap((v) => parseDuration(v, flag));

/**
 * --since as Docker takes it, to Unix ms: a duration back from now ("10m", "1h30m"), a Unix time in
 * seconds ("1732440000", "1732440000.5"), or an RFC 3339 date ("2026-11-24T10:00:00Z", "2026-11-24").
 */
export function sinceTime(flag: string, now = Date.now) {
  return (v: string): number => {
    const text = v.trim();
    if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
    if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i.test(text)) {
      const ms = Date.parse(text);
      if (!Number.isNaN(ms)) return ms;
    }
    try {
      return now() - parseDuration(text, flag);
    } catch {
      throw new InvalidArgumentError(`${flag} must be a duration back from now (10m, 1h30m), a Unix time in seconds or an RFC 3339 date (2026-11-24T10:00:00Z), got "${v}"`);
    }
  };
}

/**
 * --security-opt seccomp=unconfined|default|FILE (or Docker's older seccomp:…) → the spec's
 * seccomp_profile: "unconfined", "" for the default, or the JSON of FILE, read here and sent.
 */
export function securityOpt(v: string): string {
  const m = /^seccomp[=:](.+)$/.exec(v);
  if (!m) throw new InvalidArgumentError(`only seccomp=unconfined, seccomp=default or seccomp=FILE is supported, got "${v}"`);
  const value = m[1];
  if (value === 'unconfined') return value;
  if (value === 'default') return '';
  let text: string;
  try {
    text = readFileSync(value, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the seccomp profile ${value}: ${(err as Error).message}`);
  }
  try {
    return JSON.stringify(JSON.parse(text));
  } catch (err) {
    throw new InvalidArgumentError(`the seccomp profile ${value} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Options shared by `service create` and `service update`, applied onto a spec. */
export interface TemplateFlags {
  limitMemory?: number;
  limitCpu?: number;
  limitPids?: number;
  reserveMemory?: number;
  reserveCpu?: number;
  restartCondition?: string;
  restartDelay?: number;
  restartMaxAttempts?: number;
  restartWindow?: number;
  stopSignal?: string;
  stopGracePeriod?: number;
  hostname?: string;
  workdir?: string;
  user?: string;
  replicasMaxPerNode?: number;
  securityOpt?: string;
  healthCmd?: string;
  healthInterval?: number;
  healthTimeout?: number;
  healthRetries?: number;
  healthStartPeriod?: number;
  /** false when --no-healthcheck is given (commander's negated option). */
  healthcheck?: boolean;
}

/**
 * --health-* and --no-healthcheck, as Docker applies them: --no-healthcheck replaces any check
 * with NONE; otherwise the flags given change the check the spec has (a NONE one starts over
 * empty), and on update --health-cmd '' and a duration or retries of 0 reset that field to the
 * image's (or the default). On create an empty command is refused: there is nothing to reset.
 */
function applyHealthFlags(c: ContainerSpec__Output, f: TemplateFlags, creating: boolean): void {
  const given = HEALTH_FLAGS.filter(([key]) => f[key] !== undefined);
  if (f.healthcheck === false) {
    if (given.length) throw invalidArgument(`--no-healthcheck conflicts with ${given.map(([, flag]) => flag).join(', ')}`);
    c.healthcheck = { test: ['NONE'], interval_ms: 0, timeout_ms: 0, start_period_ms: 0, retries: 0 };
    return;
  }
  if (!given.length) return;
  const blank = { test: [], interval_ms: 0, timeout_ms: 0, start_period_ms: 0, retries: 0 };
  const h = c.healthcheck && c.healthcheck.test[0] !== 'NONE' ? { ...c.healthcheck } : blank;
  if (f.healthCmd !== undefined) {
    if (!f.healthCmd.trim() && creating) throw invalidArgument('--health-cmd must not be empty (--no-healthcheck turns the image’s check off)');
    h.test = f.healthCmd.trim() ? ['CMD-SHELL', f.healthCmd] : [];
  }
  if (f.healthInterval !== undefined) h.interval_ms = f.healthInterval;
  if (f.healthTimeout !== undefined) h.timeout_ms = f.healthTimeout;
  if (f.healthStartPeriod !== undefined) h.start_period_ms = f.healthStartPeriod;
  if (f.healthRetries !== undefined) h.retries = f.healthRetries;
  c.healthcheck = h;
}

const HEALTH_FLAGS = [
  ['healthCmd', '--health-cmd'],
  ['healthInterval', '--health-interval'],
  ['healthTimeout', '--health-timeout'],
  ['healthRetries', '--health-retries'],
  ['healthStartPeriod', '--health-start-period'],
] as const;

export function applyTemplateFlags(spec: ServiceSpec__Output, f: TemplateFlags, creating: boolean): void {
  const t = spec.task_template!;
  const c = t.container!;
  const limits = t.resources!.limits!;
  const reservations = t.resources!.reservations!;
  const restart = t.restart_policy!;
  if (f.limitMemory !== undefined) limits.memory_bytes = f.limitMemory;
  if (f.limitCpu !== undefined) limits.nano_cpus = f.limitCpu;
  if (f.limitPids !== undefined) limits.pids = f.limitPids;
  if (f.reserveMemory !== undefined) reservations.memory_bytes = f.reserveMemory;
  if (f.reserveCpu !== undefined) reservations.nano_cpus = f.reserveCpu;
  if (f.restartCondition !== undefined) restart.condition = f.restartCondition;
  if (f.restartDelay !== undefined) restart.delay_ms = f.restartDelay;
  if (f.restartMaxAttempts !== undefined) restart.max_attempts = f.restartMaxAttempts;
  if (f.restartWindow !== undefined) restart.window_ms = f.restartWindow;
  if (f.stopSignal !== undefined) c.stop_signal = f.stopSignal;
  if (f.stopGracePeriod !== undefined) c.stop_grace_period_ms = f.stopGracePeriod;
  if (f.hostname !== undefined) c.hostname = f.hostname;
  if (f.workdir !== undefined) c.dir = f.workdir;
  if (f.user !== undefined) c.user = f.user;
  if (f.replicasMaxPerNode !== undefined) t.placement!.max_replicas = f.replicasMaxPerNode;
  if (f.securityOpt !== undefined) c.seccomp_profile = f.securityOpt;
  applyHealthFlags(c, f, creating);
}

/** Adds the template options to a command; create and update share them. */
export function templateOptions(cmd: Command): Command {
  return cmd
    .option('--limit-memory <bytes>', 'memory limit (e.g. 64m)', bytes('--limit-memory'))
    .option('--limit-cpu <cpus>', 'CPU limit (e.g. 0.5)', cpus('--limit-cpu'))
    .option('--limit-pids <n>', 'maximum number of processes', integer('--limit-pids'))
    .option('--reserve-memory <bytes>', 'memory reservation, for scheduling', bytes('--reserve-memory'))
    .option('--reserve-cpu <cpus>', 'CPU reservation, for scheduling', cpus('--reserve-cpu'))
    .option('--restart-condition <condition>', 'restart when: any, on-failure or none')
    .option('--restart-delay <duration>', 'delay between restarts (e.g. 5s)', duration('--restart-delay'))
    .option('--restart-max-attempts <n>', 'maximum restarts before giving up (0: unlimited)', integer('--restart-max-attempts'))
    .option('--restart-window <duration>', 'window in which restarts count (0: forever)', duration('--restart-window'))
    .option('--stop-signal <signal>', 'signal that stops a task (default SIGTERM)')
    .option('--stop-grace-period <duration>', 'time to wait before SIGKILL (default 10s)', duration('--stop-grace-period'))
    .option('--hostname <name>', 'container hostname')
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user>', 'user[:group] to run as')
    .option('--replicas-max-per-node <n>', 'maximum tasks per node (0: unlimited)', integer('--replicas-max-per-node'))
    .option('--security-opt <opt>', 'seccomp=unconfined, seccomp=default or seccomp=FILE (a profile in JSON)', securityOpt)
    .option('--health-cmd <command>', 'health check run in the container with /bin/sh -c; exit 0 is healthy')
    .option('--health-interval <duration>', 'time between health checks (default 30s)', duration('--health-interval'))
    .option('--health-timeout <duration>', 'longest a health check may run (default 30s)', duration('--health-timeout'))
    .option('--health-retries <n>', 'failed checks in a row that make a task unhealthy (default 3)', integer('--health-retries'))
    .option('--health-start-period <duration>', 'time after the start in which failed checks do not count (default 0s)', duration('--health-start-period'))
    .option('--no-healthcheck', 'no health check, not even the image’s HEALTHCHECK');
}

/** A spec with every nested message present and nothing set; the daemon fills in defaults. */
export function blankSpec(): ServiceSpec__Output {
  return {
    name: '',
    labels: {},
    mode: { mode: 'replicated', replicated: { replicas: 1 } },
    task_template: {
      container: { image: '', command: [], args: [], env: [], dir: '', user: '', hostname: '', stop_signal: '', labels: {}, seccomp_profile: '', healthcheck: null },
      resources: { limits: { nano_cpus: 0, memory_bytes: 0, pids: 0 }, reservations: { nano_cpus: 0, memory_bytes: 0, pids: 0 } },
      restart_policy: { condition: 'any', max_attempts: 0, window_ms: 0 },
      placement: { constraints: [], max_replicas: 0, preferences: [], platforms: [] },
      networks: [],
    },
    update_config: null,
    rollback_config: null,
    endpoint_spec: null,
  };
}

/** Parses KEY=VALUE labels into a map. */
export function labelMap(entries: string[]): Record<string, string> {
  return Object.fromEntries(entries.map((e) => [e.split('=', 1)[0], e.includes('=') ? e.slice(e.indexOf('=') + 1) : '']));
}
