import { describe, expect, it } from 'vitest';
import type { HealthConfig__Output } from '../../src/gen/shoal/v1/HealthConfig';
import { afterProbe, effectiveCheck, unhealthyError, type HealthCheck, type HealthState } from '../../src/worker/exec/health';

const config = (c: Partial<HealthConfig__Output>): HealthConfig__Output => ({ test: [], interval_ms: 0, timeout_ms: 0, start_period_ms: 0, retries: 0, ...c });

describe('effectiveCheck', () => {
  const image = config({ test: ['CMD', '/bin/probe', '--quick'], interval_ms: 5000, retries: 5 });

  it('takes the image’s check when the service names none', () => {
    expect(effectiveCheck(null, image)).toEqual({ argv: ['/bin/probe', '--quick'], intervalMs: 5000, timeoutMs: 30_000, startPeriodMs: 0, retries: 5 });
  });

  it('merges field by field as Docker does: an empty test or a 0 takes the image’s, then the default', () => {
    const spec = config({ test: ['CMD-SHELL', 'wget -qO- http://127.0.0.1/health'], timeout_ms: 2000 });
    expect(effectiveCheck(spec, image)).toEqual({
      argv: ['/bin/sh', '-c', 'wget -qO- http://127.0.0.1/health'],
      intervalMs: 5000,
      timeoutMs: 2000,
      startPeriodMs: 0,
      retries: 5,
    });
    expect(effectiveCheck(config({ interval_ms: 500 }), image)).toMatchObject({ argv: ['/bin/probe', '--quick'], intervalMs: 500, retries: 5 });
    expect(effectiveCheck(config({ test: ['CMD', 'true'] }), undefined)).toEqual({ argv: ['true'], intervalMs: 30_000, timeoutMs: 30_000, startPeriodMs: 0, retries: 3 });
  });

  it('is null with NONE, with no check anywhere, or with a test Docker ignores too', () => {
    expect(effectiveCheck(config({ test: ['NONE'] }), image)).toBeNull();
    expect(effectiveCheck(null, undefined)).toBeNull();
    expect(effectiveCheck(config({ interval_ms: 500 }), undefined)).toBeNull();
    expect(effectiveCheck(null, config({ test: ['probe'] }))).toBeNull();
    expect(effectiveCheck(null, config({ test: ['CMD-SHELL', ' '] }))).toBeNull();
  });
});

describe('afterProbe', () => {
  const check: HealthCheck = { argv: ['true'], intervalMs: 1000, timeoutMs: 1000, startPeriodMs: 10_000, retries: 3 };
  const starting: HealthState = { status: 'starting', failingStreak: 0, lastFailure: '' };
  const pass = (atMs: number) => ({ ok: true, failure: '', atMs });
  const fail = (atMs: number, failure = 'exit status 1') => ({ ok: false, failure, atMs });
  const run = (from: HealthState, probes: ReturnType<typeof pass>[]) => probes.reduce((s, p) => afterProbe(s, p, check, 0), from);

  it('is healthy after the first check that passes', () => {
    expect(run(starting, [pass(1000)])).toEqual({ status: 'healthy', failingStreak: 0, lastFailure: '' });
  });

  it('does not count failures in the start period while the container has not passed a check', () => {
    expect(run(starting, [fail(1000), fail(2000), fail(9000), fail(9999)])).toEqual({ status: 'starting', failingStreak: 0, lastFailure: 'exit status 1' });
    expect(run(starting, [fail(1000), fail(10_000), fail(11_000)])).toMatchObject({ status: 'starting', failingStreak: 2 });
    expect(run(starting, [fail(10_000), fail(11_000), fail(12_000)])).toMatchObject({ status: 'unhealthy', failingStreak: 3 });
  });

  it('counts failures in the start period once a check has passed', () => {
    expect(run(starting, [pass(1000), fail(2000), fail(3000), fail(4000, 'timed out after 1s')])).toEqual({
      status: 'unhealthy',
      failingStreak: 3,
      lastFailure: 'timed out after 1s',
    });
  });

  it('needs `retries` failures in a row: a pass clears the streak', () => {
    const healthy: HealthState = { status: 'healthy', failingStreak: 0, lastFailure: '' };
    expect(run(healthy, [fail(20_000), fail(21_000), pass(22_000), fail(23_000), fail(24_000)])).toMatchObject({ status: 'healthy', failingStreak: 2 });
    expect(run(healthy, [fail(20_000), fail(21_000), pass(22_000), fail(23_000), fail(24_000), fail(25_000)])).toMatchObject({ status: 'unhealthy' });
  });

  it('stays unhealthy: the task fails, as in Swarm, rather than recovering', () => {
    const unhealthy: HealthState = { status: 'unhealthy', failingStreak: 3, lastFailure: 'exit status 1' };
    expect(afterProbe(unhealthy, pass(30_000), check, 0)).toBe(unhealthy);
  });

  it('says how many checks failed and what the last one said', () => {
    expect(unhealthyError({ status: 'unhealthy', failingStreak: 3, lastFailure: 'exit status 1: no such file' })).toBe(
      'unhealthy container: 3 health checks in a row failed; the last: exit status 1: no such file',
    );
    expect(unhealthyError({ status: 'unhealthy', failingStreak: 1, lastFailure: 'timed out after 2s' })).toBe(
      'unhealthy container: 1 health check in a row failed; the last: timed out after 2s',
    );
  });
});
