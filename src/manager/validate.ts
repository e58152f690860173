import { constants } from 'node:os';
import type { ServiceSpec, ServiceSpec__Output } from '../gen/shoal/v1/ServiceSpec';
import type { ServiceMode__Output } from '../gen/shoal/v1/ServiceMode';
import type { ContainerSpec, ContainerSpec__Output } from '../gen/shoal/v1/ContainerSpec';
import type { ResourceRequirements, ResourceRequirements__Output } from '../gen/shoal/v1/ResourceRequirements';
import type { Resources, Resources__Output } from '../gen/shoal/v1/Resources';
import type { RestartPolicy, RestartPolicy__Output } from '../gen/shoal/v1/RestartPolicy';
import type { Placement, Placement__Output } from '../gen/shoal/v1/Placement';
import { invalidArgument, ShoalError } from '../common/errors';
import { parseConstraint } from '../scheduler/constraints';
import { parseSpread } from '../scheduler/preferences';
import { validateSeccompProfile } from './seccomp-profile';

/** Docker refuses memory limits below this: the container runtime itself needs some. */
export const MIN_MEMORY_LIMIT = 6 * 1024 * 1024;
const DEFAULT_RESTART_DELAY_MS = 5000;
const DEFAULT_STOP_GRACE_MS = 10_000;
const RESTART_CONDITIONS = ['any', 'on-failure', 'none'];
const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const ENV_KEY_PATTERN = /^[^=\s]+$/;

type Int = number | string | { toString(): string } | null | undefined;

const fail = (path: string, rule: string): never => {
  throw invalidArgument(`invalid service spec: ${path}: ${rule}`);
};

/** int64 fields may arrive as numbers, decimal strings or Longs; anything else becomes NaN and fails. */
function nonNegativeInt(value: Int, path: string): number {
  const n = value === null || value === undefined ? 0 : Number(String(value));
  if (!Number.isSafeInteger(n) || n < 0) fail(path, 'must be a non-negative integer');
  return n;
}

/**
 * Checks a service spec as a client sent it (possibly partial) and returns it complete, with
 * defaults filled, ready to store. Throws invalidArgument naming the field and the rule broken.
 */
export function validateServiceSpec(spec: ServiceSpec): ServiceSpec__Output {
  const name = spec.name ?? '';
  if (!name) fail('name', 'must not be empty');
  if (name.length > 63) fail('name', 'must be at most 63 characters');
  if (!NAME_PATTERN.test(name)) {
    fail('name', "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'");
  }
  const t = spec.task_template ?? {};
  return {
    name,
    labels: { ...spec.labels },
    mode: validateMode(spec.mode),
    task_template: {
      container: validateContainer(t.container ?? {}),
      resources: validateResources(t.resources ?? {}),
      restart_policy: validateRestartPolicy(t.restart_policy ?? {}),
      placement: validatePlacement(t.placement ?? {}),
    },
  };
}

function validateMode(mode: ServiceSpec['mode']): ServiceMode__Output {
  if (!mode) return { mode: 'replicated', replicated: { replicas: 1 } };
  if (mode.replicated && mode.global) fail('mode', 'set replicated or global, not both');
  const kind = mode.global || mode.mode === 'global' ? 'global' : 'replicated';
  if (kind === 'global') return { mode: 'global', global: {} };
  return { mode: 'replicated', replicated: { replicas: nonNegativeInt(mode.replicated?.replicas, 'mode.replicated.replicas') } };
}

function validateContainer(c: ContainerSpec): ContainerSpec__Output {
  const path = 'task_template.container';
  const image = c.image ?? '';
  if (!image) fail(`${path}.image`, 'must not be empty');
  if (/\s/.test(image)) fail(`${path}.image`, 'must not contain whitespace');
  const env = c.env ?? [];
  env.forEach((entry, i) => {
    const eq = entry.indexOf('=');
    if (eq <= 0 || !ENV_KEY_PATTERN.test(entry.slice(0, eq))) {
      fail(`${path}.env[${i}]`, "must be KEY=VALUE with a non-empty KEY without '=' or whitespace");
    }
  });
  // stop_grace_period_ms is a proto3 optional: absent takes the default, 0 means kill at once.
  const grace = c.stop_grace_period_ms;
  return {
    image,
    command: [...(c.command ?? [])],
    args: [...(c.args ?? [])],
    env: [...env],
    dir: c.dir ?? '',
    user: c.user ?? '',
    hostname: c.hostname ?? '',
    stop_signal: validateSignal(c.stop_signal ?? '', `${path}.stop_signal`),
    stop_grace_period_ms:
      grace === null || grace === undefined ? DEFAULT_STOP_GRACE_MS : nonNegativeInt(grace, `${path}.stop_grace_period_ms`),
    labels: { ...c.labels },
    seccomp_profile: validateSeccompProfile(c.seccomp_profile ?? '', `${path}.seccomp_profile`, fail),
  };
}

/** Empty (the image's default), a name with or without SIG (normalized to SIGTERM form), or 1-64. */
function validateSignal(signal: string, path: string): string {
  if (!signal) return '';
  if (/^\d+$/.test(signal)) {
    const n = Number(signal);
    if (n < 1 || n > 64) fail(path, 'must be a signal name such as SIGTERM or a number from 1 to 64');
    return String(n);
  }
  const upper = signal.toUpperCase();
  const full = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  if (!(full in constants.signals)) fail(path, 'must be a signal name such as SIGTERM or a number from 1 to 64');
  return full;
}

const RESOURCE_FIELDS = ['nano_cpus', 'memory_bytes', 'pids'] as const;

function validateResources(r: ResourceRequirements): ResourceRequirements__Output {
  const path = 'task_template.resources';
  const read = (res: Resources | null | undefined, which: string): Resources__Output => ({
    nano_cpus: nonNegativeInt(res?.nano_cpus, `${path}.${which}.nano_cpus`),
    memory_bytes: nonNegativeInt(res?.memory_bytes, `${path}.${which}.memory_bytes`),
    pids: nonNegativeInt(res?.pids, `${path}.${which}.pids`),
  });
  const limits = read(r.limits, 'limits');
  const reservations = read(r.reservations, 'reservations');
  if (limits.memory_bytes !== 0 && limits.memory_bytes < MIN_MEMORY_LIMIT) {
    fail(`${path}.limits.memory_bytes`, `must be 0 (no limit) or at least 6 MiB (${MIN_MEMORY_LIMIT} bytes)`);
  }
  for (const field of RESOURCE_FIELDS) {
    if (limits[field] !== 0 && reservations[field] > limits[field]) {
      fail(`${path}.reservations.${field}`, `must not exceed limits.${field} (${limits[field]})`);
    }
  }
  return { limits, reservations };
}

function validateRestartPolicy(p: RestartPolicy): RestartPolicy__Output {
  const path = 'task_template.restart_policy';
  const condition = p.condition || 'any';
  if (!RESTART_CONDITIONS.includes(condition)) fail(`${path}.condition`, `must be one of ${RESTART_CONDITIONS.join(', ')}`);
  // delay_ms is a proto3 optional: absent takes the default, 0 restarts at once.
  const delay = p.delay_ms === undefined || p.delay_ms === null ? DEFAULT_RESTART_DELAY_MS : nonNegativeInt(p.delay_ms, `${path}.delay_ms`);
  return {
    condition,
    delay_ms: delay,
    max_attempts: nonNegativeInt(p.max_attempts, `${path}.max_attempts`),
    window_ms: nonNegativeInt(p.window_ms, `${path}.window_ms`),
  };
}

function validatePlacement(p: Placement): Placement__Output {
  const path = 'task_template.placement';
  const constraints = [...(p.constraints ?? [])];
  constraints.forEach((text, i) => {
    try {
      parseConstraint(text);
    } catch (err) {
      if (!(err instanceof ShoalError)) throw err;
      fail(`${path}.constraints[${i}]`, err.message);
    }
  });
  return { constraints, max_replicas: nonNegativeInt(p.max_replicas, `${path}.max_replicas`), ...validateSpreadAndPlatforms(p, path) };
}

/** Placement preferences must name a node label; a platform must say at least its os or architecture. */
function validateSpreadAndPlatforms(p: Placement, path: string): Pick<Placement__Output, 'preferences' | 'platforms'> {
  const preferences = (p.preferences ?? []).map((pref, i) => {
    const spread = pref.spread ?? '';
    try {
      parseSpread(spread);
    } catch (err) {
      if (!(err instanceof ShoalError)) throw err;
      fail(`${path}.preferences[${i}].spread`, err.message);
    }
    return { spread };
  });
  const platforms = (p.platforms ?? []).map((platform, i) => {
    const os = platform.os ?? '';
    const architecture = platform.architecture ?? '';
    if (!os && !architecture) fail(`${path}.platforms[${i}]`, 'must set os or architecture');
    if (/\s/.test(os + architecture)) fail(`${path}.platforms[${i}]`, 'must not contain whitespace');
    return { os, architecture };
  });
  return { preferences, platforms };
}
