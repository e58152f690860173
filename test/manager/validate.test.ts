import { describe, expect, it } from 'vitest';
import { MAX_REPLICAS, MAX_SPEC_BYTES, validateServiceSpec } from '../../src/manager/validate';
import type { ServiceSpec } from '../../src/gen/shoal/v1/ServiceSpec';
import type { TaskSpec } from '../../src/gen/shoal/v1/TaskSpec';

const MiB = 2 ** 20;

const spec = (task: TaskSpec = {}, rest: Partial<ServiceSpec> = {}): ServiceSpec => ({
  name: 'web',
  ...rest,
  task_template: { ...task, container: { image: 'busybox', ...task.container } },
});

const rejects = (s: ServiceSpec, message: string) => expect(() => validateServiceSpec(s)).toThrow(`invalid service spec: ${message}`);

describe('validateServiceSpec', () => {
  it('fills defaults into a minimal spec', () => {
    expect(validateServiceSpec({ name: 'web', task_template: { container: { image: 'busybox' } } })).toEqual({
      name: 'web',
      labels: {},
      mode: { mode: 'replicated', replicated: { replicas: 1 } },
      task_template: {
        container: {
          image: 'busybox',
          command: [],
          args: [],
          env: [],
          dir: '',
          user: '',
          hostname: '',
          stop_signal: '',
          stop_grace_period_ms: 10_000,
          labels: {},
          seccomp_profile: '',
          healthcheck: null,
        },
        resources: {
          limits: { nano_cpus: 0, memory_bytes: 0, pids: 0 },
          reservations: { nano_cpus: 0, memory_bytes: 0, pids: 0 },
        },
        restart_policy: { condition: 'any', delay_ms: 5000, max_attempts: 0, window_ms: 0 },
        placement: { constraints: [], max_replicas: 0, preferences: [], platforms: [] },
        networks: [],
      },
      update_config: { parallelism: 1, delay_ms: 0, failure_action: 'pause', monitor_ms: 5000, max_failure_ratio: 0, order: 'stop-first' },
      rollback_config: { parallelism: 1, delay_ms: 0, failure_action: 'pause', monitor_ms: 5000, max_failure_ratio: 0, order: 'stop-first' },
      endpoint_spec: { mode: 'vip', ports: [] },
    });
  });

  it('keeps given values and normalizes int64 strings and signal names', () => {
    const out = validateServiceSpec(
      spec(
        {
          container: { image: 'nginx:1.25', env: ['A=1', 'B='], stop_signal: 'quit', stop_grace_period_ms: 0 },
          resources: { limits: { memory_bytes: '67108864', nano_cpus: 1e9 }, reservations: { memory_bytes: 32 * MiB } },
          restart_policy: { condition: 'on-failure', delay_ms: 100, max_attempts: 3, window_ms: 60_000 },
          placement: { constraints: ['node.labels.zone==a'], max_replicas: 2 },
        },
        { labels: { team: 'x' }, mode: { replicated: { replicas: '3' } } },
      ),
    );
    expect(out.mode).toEqual({ mode: 'replicated', replicated: { replicas: 3 } });
    expect(out.labels).toEqual({ team: 'x' });
    expect(out.task_template!.container).toMatchObject({ env: ['A=1', 'B='], stop_signal: 'SIGQUIT', stop_grace_period_ms: 0 });
    expect(out.task_template!.resources!.limits).toEqual({ nano_cpus: 1e9, memory_bytes: 64 * MiB, pids: 0 });
    expect(out.task_template!.restart_policy).toEqual({ condition: 'on-failure', delay_ms: 100, max_attempts: 3, window_ms: 60_000 });
    expect(out.task_template!.placement).toEqual({ constraints: ['node.labels.zone==a'], max_replicas: 2, preferences: [], platforms: [] });
  });

  it('keeps an explicit restart delay of 0, unlike an absent one', () => {
    const zero = validateServiceSpec(spec({ restart_policy: { delay_ms: 0 } }));
    expect(zero.task_template!.restart_policy!.delay_ms).toBe(0);
    expect(validateServiceSpec(spec({})).task_template!.restart_policy!.delay_ms).toBe(5000);
  });

  it('accepts global mode, as the loader decodes it or as a client writes it', () => {
    expect(validateServiceSpec(spec({}, { mode: { global: {} } })).mode).toEqual({ mode: 'global', global: {} });
    expect(validateServiceSpec(spec({}, { mode: { mode: 'global', global: {}, replicated: null } })).mode).toEqual({ mode: 'global', global: {} });
    expect(validateServiceSpec(spec({}, { mode: { replicated: { replicas: 0 } } })).mode).toEqual({ mode: 'replicated', replicated: { replicas: 0 } });
  });

  it('accepts signal numbers and names with SIG', () => {
    expect(validateServiceSpec(spec({ container: { stop_signal: 'SIGUSR1' } })).task_template!.container!.stop_signal).toBe('SIGUSR1');
    expect(validateServiceSpec(spec({ container: { stop_signal: '15' } })).task_template!.container!.stop_signal).toBe('15');
  });

  it('rejects a spec too large to copy into tasks (ten 100 KB env values), saying its size', () => {
    const env = Array.from({ length: 10 }, (_, i) => `K${i}=${'x'.repeat(100_000)}`);
    expect(() => validateServiceSpec(spec({ container: { env } }))).toThrow(/^invalid service spec: spec: is 977\.\d KiB encoded; at most 128 KiB/);
  });

  it('accepts values at the limits', () => {
    const atLimits = spec(
      { container: { hostname: `${'a'.repeat(31)}.${'b'.repeat(32)}`, env: [`K=${'x'.repeat(MAX_SPEC_BYTES - 1000)}`] }, resources: { limits: { nano_cpus: 256e9, pids: 4194304 } } },
      { mode: { replicated: { replicas: 500 } } },
    );
    expect(validateServiceSpec(atLimits).task_template!.resources!.limits).toEqual({ nano_cpus: 256e9, memory_bytes: 0, pids: 4194304 });
    expect(validateServiceSpec(spec({ container: { hostname: 'web-1.example.com' }, resources: { limits: { nano_cpus: 1e7 } } }, { mode: { replicated: { replicas: MAX_REPLICAS } } })).mode!.replicated!.replicas).toBe(MAX_REPLICAS);
  });

  it.each<[string, ServiceSpec, string]>([
    ['empty name', spec({}, { name: '' }), 'name: must not be empty'],
    ['long name', spec({}, { name: 'a'.repeat(64) }), 'name: must be at most 63 characters'],
    ['bad name', spec({}, { name: '-web' }), "name: must start with a letter or digit and contain only letters, digits, '_', '.' and '-'"],
    ['name with space', spec({}, { name: 'my web' }), 'name: must start with a letter or digit'],
    ['both modes', spec({}, { mode: { replicated: { replicas: 1 }, global: {} } }), 'mode: set replicated or global, not both'],
    ['negative replicas', spec({}, { mode: { replicated: { replicas: -1 } } }), 'mode.replicated.replicas: must be a non-negative integer'],
    ['fractional replicas', spec({}, { mode: { replicated: { replicas: 1.5 } } }), 'mode.replicated.replicas: must be a non-negative integer'],
    ['non-numeric replicas', spec({}, { mode: { replicated: { replicas: 'x' } } }), 'mode.replicated.replicas: must be a non-negative integer'],
    ['no image', { name: 'web' }, 'task_template.container.image: must not be empty'],
    ['image with space', spec({ container: { image: 'bad image' } }), 'task_template.container.image: must not contain whitespace'],
    ['env without =', spec({ container: { env: ['A=1', 'B'] } }), "task_template.container.env[1]: must be KEY=VALUE with a non-empty KEY without '=' or whitespace"],
    ['env empty key', spec({ container: { env: ['=1'] } }), 'task_template.container.env[0]: must be KEY=VALUE'],
    ['env key with space', spec({ container: { env: ['A B=1'] } }), 'task_template.container.env[0]: must be KEY=VALUE'],
    ['tiny memory limit', spec({ resources: { limits: { memory_bytes: 4 * MiB } } }), 'task_template.resources.limits.memory_bytes: must be 0 (no limit) or at least 6 MiB (6291456 bytes)'],
    ['negative memory', spec({ resources: { limits: { memory_bytes: -1 } } }), 'task_template.resources.limits.memory_bytes: must be a non-negative integer'],
    ['memory reservation over limit', spec({ resources: { limits: { memory_bytes: 64 * MiB }, reservations: { memory_bytes: 128 * MiB } } }), 'task_template.resources.reservations.memory_bytes: must not exceed limits.memory_bytes (67108864)'],
    ['cpu reservation over limit', spec({ resources: { limits: { nano_cpus: 5e8 }, reservations: { nano_cpus: 1e9 } } }), 'task_template.resources.reservations.nano_cpus: must not exceed limits.nano_cpus (500000000)'],
    ['negative cpus', spec({ resources: { reservations: { nano_cpus: -5 } } }), 'task_template.resources.reservations.nano_cpus: must be a non-negative integer'],
    ['fractional cpus', spec({ resources: { limits: { nano_cpus: 0.5 } } }), 'task_template.resources.limits.nano_cpus: must be a non-negative integer'],
    ['negative pids', spec({ resources: { limits: { pids: -1 } } }), 'task_template.resources.limits.pids: must be a non-negative integer'],
    ['bad restart condition', spec({ restart_policy: { condition: 'always' } }), 'task_template.restart_policy.condition: must be one of any, on-failure, none'],
    ['negative delay', spec({ restart_policy: { delay_ms: -1 } }), 'task_template.restart_policy.delay_ms: must be a non-negative integer'],
    ['negative window', spec({ restart_policy: { window_ms: -1 } }), 'task_template.restart_policy.window_ms: must be a non-negative integer'],
    ['negative attempts', spec({ restart_policy: { max_attempts: -1 } }), 'task_template.restart_policy.max_attempts: must be a non-negative integer'],
    ['negative grace', spec({ container: { stop_grace_period_ms: -1 } }), 'task_template.container.stop_grace_period_ms: must be a non-negative integer'],
    ['bad constraint', spec({ placement: { constraints: ['node.labels.zone==a', 'zone=a'] } }), 'task_template.placement.constraints[1]: "zone=a" is not key==value or key!=value'],
    ['unknown constraint key', spec({ placement: { constraints: ['node.name==a'] } }), 'task_template.placement.constraints[0]: "node.name==a" has an unknown key "node.name": use node.id, node.hostname, node.role, node.platform.os, node.platform.arch or node.labels.<name>'],
    ['negative max replicas', spec({ placement: { max_replicas: -1 } }), 'task_template.placement.max_replicas: must be a non-negative integer'],
    ['unknown signal', spec({ container: { stop_signal: 'SIGFOO' } }), 'task_template.container.stop_signal: must be a signal name such as SIGTERM or a number from 1 to 64'],
    ['signal out of range', spec({ container: { stop_signal: '65' } }), 'task_template.container.stop_signal: must be a signal name such as SIGTERM or a number from 1 to 64'],
    ['signal zero', spec({ container: { stop_signal: '0' } }), 'task_template.container.stop_signal: must be a signal name'],
    ['a billion replicas', spec({}, { mode: { replicated: { replicas: 1e9 } } }), `mode.replicated.replicas: must be at most ${MAX_REPLICAS}`],
    ['replicas of a large spec', spec({ container: { env: [`K=${'x'.repeat(100_000)}`] } }, { mode: { replicated: { replicas: 1000 } } }), 'mode.replicated.replicas: 1000 replicas of a 98.'],
    ['cpu limit past cpu.shares', spec({ resources: { limits: { nano_cpus: 1000e9 } } }), 'task_template.resources.limits.nano_cpus: must be 0 (no limit) or from 0.01 to 256 CPUs'],
    ['cpu limit below the CFS minimum', spec({ resources: { limits: { nano_cpus: 1e6 } } }), 'task_template.resources.limits.nano_cpus: must be 0 (no limit) or from 0.01 to 256 CPUs'],
    ['pids limit past the kernel', spec({ resources: { limits: { pids: 99999999999999 } } }), 'task_template.resources.limits.pids: must be at most 4194304'],
    ['300-character hostname', spec({ container: { hostname: 'h'.repeat(300) } }), 'task_template.container.hostname: must be at most 64 bytes'],
    ['hostname with a space', spec({ container: { hostname: 'my host' } }), 'task_template.container.hostname: must be a hostname'],
    ['hostname label ending in -', spec({ container: { hostname: 'web-.example' } }), 'task_template.container.hostname: must be a hostname'],
    ['hostname with an empty label', spec({ container: { hostname: 'web..example' } }), 'task_template.container.hostname: must be a hostname'],
    ['a network without a name', spec({ networks: [{ target: 'backend' }, { target: ' ' }] }), 'task_template.networks[1].target: must name a network'],
    ['a network named twice', spec({ networks: [{ target: 'backend' }, { target: 'backend' }] }), 'task_template.networks[1].target: network "backend" is listed twice'],
  ])('rejects %s', (_case, s, message) => {
    rejects(s, message);
  });
});

describe('update and rollback configs', () => {
  it('keep given values and fill the rest with defaults', () => {
    const out = validateServiceSpec(spec({}, { update_config: { parallelism: 0, delay_ms: '2000', order: 'start-first', max_failure_ratio: 0.2 }, rollback_config: { failure_action: 'continue' } }));
    expect(out.update_config).toEqual({ parallelism: 0, delay_ms: 2000, failure_action: 'pause', monitor_ms: 5000, max_failure_ratio: 0.2, order: 'start-first' });
    expect(out.rollback_config).toMatchObject({ parallelism: 1, failure_action: 'continue' });
  });

  it('refuse negative durations and parallelism, naming the field', () => {
    rejects(spec({}, { update_config: { delay_ms: -1 } }), 'update_config.delay_ms: must be a non-negative integer');
    rejects(spec({}, { rollback_config: { monitor_ms: -5000 } }), 'rollback_config.monitor_ms: must be a non-negative integer');
    rejects(spec({}, { update_config: { parallelism: -2 } }), 'update_config.parallelism: must be a non-negative integer');
  });

  it('refuse a failure ratio outside 0..1', () => {
    rejects(spec({}, { update_config: { max_failure_ratio: 1.5 } }), 'update_config.max_failure_ratio: must be a number from 0 to 1');
    rejects(spec({}, { rollback_config: { max_failure_ratio: -0.1 } }), 'rollback_config.max_failure_ratio: must be a number from 0 to 1');
  });

  it('refuse an unknown failure action or order, and a rollback config that would roll back', () => {
    rejects(spec({}, { update_config: { failure_action: 'retry' } }), 'update_config.failure_action: must be one of pause, continue, rollback');
    rejects(spec({}, { rollback_config: { failure_action: 'rollback' } }), 'rollback_config.failure_action: must be one of pause, continue');
    rejects(spec({}, { update_config: { order: 'random' } }), 'update_config.order: must be one of stop-first, start-first');
  });
});
