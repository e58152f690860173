import { constants } from 'node:os';
import type { ServiceSpec, ServiceSpec__Output } from '../gen/shoal/v1/ServiceSpec';
import type { ServiceMode__Output } from '../gen/shoal/v1/ServiceMode';
import type { ContainerSpec, ContainerSpec__Output } from '../gen/shoal/v1/ContainerSpec';
import type { ResourceRequirements, ResourceRequirements__Output } from '../gen/shoal/v1/ResourceRequirements';
import type { Resources, Resources__Output } from '../gen/shoal/v1/Resources';
import type { RestartPolicy, RestartPolicy__Output } from '../gen/shoal/v1/RestartPolicy';
import type { Placement, Placement__Output } from '../gen/shoal/v1/Placement';
import type { UpdateConfig, UpdateConfig__Output } from '../gen/shoal/v1/UpdateConfig';
import type { HealthConfig, HealthConfig__Output } from '../gen/shoal/v1/HealthConfig';
import type { NetworkAttachmentConfig, NetworkAttachmentConfig__Output } from '../gen/shoal/v1/NetworkAttachmentConfig';
import type { EndpointSpec, EndpointSpec__Output } from '../gen/shoal/v1/EndpointSpec';
import type { PortConfig__Output } from '../gen/shoal/v1/PortConfig';
import { invalidArgument, ShoalError } from '../common/errors';
import { parseConstraint } from '../scheduler/constraints';
import { parseSpread } from '../scheduler/preferences';
import { validateSeccompProfile } from './seccomp-profile';

/** Docker refuses memory limits below this: the container runtime itself needs some. */
export const MIN_MEMORY_LIMIT = 6 * 1024 * 1024;
/**
 * Most replicas one service may have. Every leader pass reads and plans each task, so a service
 * of a billion replicas would stall the loops of every other service (as Map size limits and
 * memory did before this bound).
 */
export const MAX_REPLICAS = 10_000;
/**
 * Largest spec, as stored (JSON): room for a seccomp profile at its own limit (64 KiB, escaped
 * inside the spec's JSON) and the rest. Each task carries a copy of its template and etcd takes
 * at most 1.5 MiB per request, so at this size a transaction (the store fills one up to 1 MiB)
 * still holds 7 tasks.
 */
export const MAX_SPEC_BYTES = 128 * 1024;
/** Most bytes of task copies (replicas × spec size) one service may put in the store and in every pass. */
export const MAX_SERVICE_TASK_BYTES = 64 * 1024 * 1024;
/** The kernel's HOST_NAME_MAX: sethostname(2) refuses longer names. */
export const MAX_HOSTNAME_BYTES = 64;
/**
 * The kernel's PID_MAX_LIMIT on 64-bit: cgroup pids.max takes at most this (a larger value is
 * EINVAL, whatever /proc/sys/kernel/pid_max is set to, since pid_max cannot exceed it either).
 */
export const MAX_PIDS_LIMIT = 4_194_304;
/**
 * runc turns a CPU limit into cpu.shares (1024 per CPU), which the kernel caps at 262144, and
 * a CFS quota of at least 1 ms per 100 ms period: so a limit is from 0.01 to 256 CPUs.
 */
export const MIN_NANO_CPUS_LIMIT = 10_000_000;
export const MAX_NANO_CPUS_LIMIT = 256_000_000_000;
const DEFAULT_RESTART_DELAY_MS = 5000;
const DEFAULT_STOP_GRACE_MS = 10_000;
const RESTART_CONDITIONS = ['any', 'on-failure', 'none'];
/** Docker's defaults: one slot at a time, each watched for 5 s, the first failure pauses. */
const DEFAULT_UPDATE_PARALLELISM = 1;
const DEFAULT_UPDATE_MONITOR_MS = 5000;
export const FAILURE_ACTIONS = ['pause', 'continue', 'rollback'] as const;
export const UPDATE_ORDERS = ['stop-first', 'start-first'] as const;
/** Service and network names, as Docker allows them. */
export const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const ENV_KEY_PATTERN = /^[^=\s]+$/;
const HOSTNAME_LABEL = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

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
  const valid: ServiceSpec__Output = {
    name,
    labels: { ...spec.labels },
    mode: validateMode(spec.mode),
    task_template: {
      container: validateContainer(t.container ?? {}),
      resources: validateResources(t.resources ?? {}),
      restart_policy: validateRestartPolicy(t.restart_policy ?? {}),
      placement: validatePlacement(t.placement ?? {}),
      networks: validateNetworkTargets(t.networks ?? []),
    },
    update_config: validateUpdateConfig(spec.update_config ?? {}, 'update_config', FAILURE_ACTIONS),
    // Rolling back a rollback would loop between two specs: a failed rollback pauses or continues.
    rollback_config: validateUpdateConfig(spec.rollback_config ?? {}, 'rollback_config', ['pause', 'continue']),
    endpoint_spec: validateEndpointSpec(spec.endpoint_spec ?? {}),
  };
  validateSize(valid);
  return valid;
}

const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

function validateSize(spec: ServiceSpec__Output): void {
  const bytes = Buffer.byteLength(JSON.stringify(spec));
  if (bytes > MAX_SPEC_BYTES) {
    fail('spec', `is ${kib(bytes)} encoded; at most ${MAX_SPEC_BYTES / 1024} KiB (env, labels, command and args count)`);
  }
  const replicas = spec.mode?.replicated?.replicas ?? 0;
  if (replicas * bytes > MAX_SERVICE_TASK_BYTES) {
    fail(
      'mode.replicated.replicas',
      `${replicas} replicas of a ${kib(bytes)} spec make ${kib(replicas * bytes)} of task copies; at most ${MAX_SERVICE_TASK_BYTES / 1024 / 1024} MiB per service (fewer replicas or a smaller spec)`,
    );
  }
}

function validateMode(mode: ServiceSpec['mode']): ServiceMode__Output {
  if (!mode) return { mode: 'replicated', replicated: { replicas: 1 } };
  if (mode.replicated && mode.global) fail('mode', 'set replicated or global, not both');
  const kind = mode.global || mode.mode === 'global' ? 'global' : 'replicated';
  if (kind === 'global') return { mode: 'global', global: {} };
  const replicas = nonNegativeInt(mode.replicated?.replicas, 'mode.replicated.replicas');
  if (replicas > MAX_REPLICAS) fail('mode.replicated.replicas', `must be at most ${MAX_REPLICAS}`);
  return { mode: 'replicated', replicated: { replicas } };
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
    hostname: validateHostname(c.hostname ?? '', `${path}.hostname`),
    stop_signal: validateSignal(c.stop_signal ?? '', `${path}.stop_signal`),
    stop_grace_period_ms:
      grace === null || grace === undefined ? DEFAULT_STOP_GRACE_MS : nonNegativeInt(grace, `${path}.stop_grace_period_ms`),
    labels: { ...c.labels },
    seccomp_profile: validateSeccompProfile(c.seccomp_profile ?? '', `${path}.seccomp_profile`, fail),
    healthcheck: validateHealthcheck(c.healthcheck, `${path}.healthcheck`),
  };
}

/**
 * Each check is a `runc exec` (a fork of runc and a process in the container): checking more
 * often than this would keep a node's CPUs busy with checks alone.
 */
export const MIN_HEALTH_INTERVAL_MS = 100;
const HEALTH_TEST_KINDS = ['NONE', 'CMD', 'CMD-SHELL'];

/**
 * Absent or null: the image's HEALTHCHECK. An empty test takes the image's command, and a 0 the
 * image's value or Docker's default; ["NONE"] turns any check off, so it sets nothing else.
 */
function validateHealthcheck(h: HealthConfig | null | undefined, path: string): HealthConfig__Output | null {
  if (!h) return null;
  const test = [...(h.test ?? [])];
  const kind = test[0];
  if (kind !== undefined && !HEALTH_TEST_KINDS.includes(kind)) fail(`${path}.test`, `must start with ${HEALTH_TEST_KINDS.join(', ')} (got "${kind}")`);
  if (kind === 'CMD' && !test[1]?.trim()) fail(`${path}.test`, 'CMD must be followed by the command to run');
  if (kind === 'CMD-SHELL' && (test.length !== 2 || !test[1].trim())) fail(`${path}.test`, 'CMD-SHELL must be followed by one non-empty shell command');
  const valid: HealthConfig__Output = {
    test,
    interval_ms: nonNegativeInt(h.interval_ms, `${path}.interval_ms`),
    timeout_ms: nonNegativeInt(h.timeout_ms, `${path}.timeout_ms`),
    start_period_ms: nonNegativeInt(h.start_period_ms, `${path}.start_period_ms`),
    retries: nonNegativeInt(h.retries, `${path}.retries`),
  };
  if (valid.interval_ms !== 0 && valid.interval_ms < MIN_HEALTH_INTERVAL_MS) {
    fail(`${path}.interval_ms`, `must be 0 (the default) or at least ${MIN_HEALTH_INTERVAL_MS} ms: each check runs a process in the container`);
  }
  if (kind === 'NONE' && (test.length > 1 || valid.interval_ms || valid.timeout_ms || valid.start_period_ms || valid.retries)) {
    fail(`${path}.test`, 'NONE disables the check, so nothing else may be set with it');
  }
  return valid;
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

/** Empty (the task id) or a name sethostname(2) and resolvers accept: RFC 1123 labels, 64 bytes in all. */
function validateHostname(hostname: string, path: string): string {
  if (!hostname) return '';
  if (Buffer.byteLength(hostname) > MAX_HOSTNAME_BYTES) fail(path, `must be at most ${MAX_HOSTNAME_BYTES} bytes (the kernel's limit)`);
  if (!hostname.split('.').every((label) => HOSTNAME_LABEL.test(label))) {
    fail(path, "must be a hostname: dot-separated labels of letters, digits and '-', each 1 to 63 long, not starting or ending with '-'");
  }
  return hostname;
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
  if (limits.nano_cpus !== 0 && (limits.nano_cpus < MIN_NANO_CPUS_LIMIT || limits.nano_cpus > MAX_NANO_CPUS_LIMIT)) {
    fail(
      `${path}.limits.nano_cpus`,
      `must be 0 (no limit) or from 0.01 to 256 CPUs (${MIN_NANO_CPUS_LIMIT} to ${MAX_NANO_CPUS_LIMIT}): the kernel caps cpu.shares at 262144 and a CFS quota at no less than 1 ms per 100 ms`,
    );
  }
  if (limits.pids > MAX_PIDS_LIMIT) {
    fail(`${path}.limits.pids`, `must be at most ${MAX_PIDS_LIMIT} (the kernel's largest pids.max)`);
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

/** Fills an update or rollback config's defaults; durations are non-negative, the ratio a fraction. */
export function validateUpdateConfig(c: UpdateConfig, path: string, actions: readonly string[]): UpdateConfig__Output {
  const failureAction = c.failure_action || 'pause';
  if (!actions.includes(failureAction)) fail(`${path}.failure_action`, `must be one of ${actions.join(', ')}`);
  const order = c.order || 'stop-first';
  if (!(UPDATE_ORDERS as readonly string[]).includes(order)) fail(`${path}.order`, `must be one of ${UPDATE_ORDERS.join(', ')}`);
  const ratio = Number(c.max_failure_ratio ?? 0);
  if (!(ratio >= 0 && ratio <= 1)) fail(`${path}.max_failure_ratio`, 'must be a number from 0 to 1');
  const optional = (v: Int, field: string, dflt: number) => (v === null || v === undefined ? dflt : nonNegativeInt(v, `${path}.${field}`));
  return {
    parallelism: optional(c.parallelism, 'parallelism', DEFAULT_UPDATE_PARALLELISM),
    delay_ms: nonNegativeInt(c.delay_ms, `${path}.delay_ms`),
    failure_action: failureAction,
    monitor_ms: optional(c.monitor_ms, 'monitor_ms', DEFAULT_UPDATE_MONITOR_MS),
    max_failure_ratio: ratio,
    order,
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

/**
 * The networks as the client named them; the control API resolves each to a stored network's id
 * (resolveServiceNetworks), where a name and its id are found to be the same network.
 */
function validateNetworkTargets(networks: NetworkAttachmentConfig[]): NetworkAttachmentConfig__Output[] {
  const seen = new Set<string>();
  return networks.map((n, i) => {
    const target = (n.target ?? '').trim();
    if (!target) fail(`task_template.networks[${i}].target`, 'must name a network');
    if (seen.has(target)) fail(`task_template.networks[${i}].target`, `network "${target}" is listed twice`);
    seen.add(target);
    return { target };
  });
}

const ENDPOINT_MODES = ['vip', 'dnsrr'];
const PROTOCOLS = ['tcp', 'udp'];
const PUBLISH_MODES = ['ingress', 'host'];

function portNumber(value: number | undefined | null, path: string, min: number): number {
  const n = Number(value ?? 0);
  if (!Number.isInteger(n) || n < min || n > 65535) fail(path, `must be ${min}–65535`);
  return n;
}

function oneOf(value: string | undefined | null, allowed: string[], path: string): string {
  const v = value || allowed[0];
  if (!allowed.includes(v)) fail(path, `must be ${allowed.join(' or ')}, not "${v}"`);
  return v;
}

/** Defaults filled: mode vip, tcp, ingress. A published port of 0 is one the manager picks (ingress only). */
function validateEndpointSpec(e: EndpointSpec): EndpointSpec__Output {
  const mode = oneOf(e.mode, ENDPOINT_MODES, 'endpoint_spec.mode');
  const seen = new Map<string, number>();
  const ports = (e.ports ?? []).map((p, i): PortConfig__Output => {
    const path = `endpoint_spec.ports[${i}]`;
    const protocol = oneOf(p.protocol, PROTOCOLS, `${path}.protocol`);
    const target_port = portNumber(p.target_port, `${path}.target_port`, 1);
    const publish_mode = oneOf(p.publish_mode, PUBLISH_MODES, `${path}.publish_mode`);
    const published_port = portNumber(p.published_port, `${path}.published_port`, publish_mode === 'host' ? 1 : 0);
    if (published_port) {
      const key = `${published_port}/${protocol}`;
      const first = seen.get(key);
      if (first !== undefined) fail(`${path}.published_port`, `${key} is already published by endpoint_spec.ports[${first}]`);
      seen.set(key, i);
    }
    return { protocol, target_port, published_port, publish_mode };
  });
  if (mode === 'dnsrr') {
    const i = ports.findIndex((p) => p.publish_mode === 'ingress');
    // The routing mesh balances over a VIP, which a dnsrr service does not have (as in Swarm).
    if (i >= 0) fail(`endpoint_spec.ports[${i}].publish_mode`, 'must be host when endpoint_spec.mode is dnsrr: the routing mesh needs a VIP');
  }
  return { mode, ports };
}
