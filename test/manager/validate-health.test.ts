import { describe, expect, it } from 'vitest';
import { validateServiceSpec } from '../../src/manager/validate';
import type { HealthConfig } from '../../src/gen/shoal/v1/HealthConfig';

const withCheck = (healthcheck: HealthConfig | null) => validateServiceSpec({ name: 'web', task_template: { container: { image: 'busybox', healthcheck } } });
const checkOf = (healthcheck: HealthConfig | null) => withCheck(healthcheck).task_template!.container!.healthcheck;
const rejects = (healthcheck: HealthConfig, message: string) =>
  expect(() => withCheck(healthcheck)).toThrow(`invalid service spec: task_template.container.healthcheck.${message}`);

describe('health check validation', () => {
  it('stores no check when none is given (the image’s applies), and fills a given one’s zeros', () => {
    expect(checkOf(null)).toBeNull();
    expect(checkOf({ test: ['CMD-SHELL', 'wget -qO- http://127.0.0.1/'], interval_ms: '500', retries: 2 })).toEqual({
      test: ['CMD-SHELL', 'wget -qO- http://127.0.0.1/'],
      interval_ms: 500,
      timeout_ms: 0,
      start_period_ms: 0,
      retries: 2,
    });
    expect(checkOf({ test: ['CMD', '/bin/probe', '-q'] })!.test).toEqual(['CMD', '/bin/probe', '-q']);
    // the image's test, with the service's timing
    expect(checkOf({ interval_ms: 1000 })).toMatchObject({ test: [], interval_ms: 1000 });
    expect(checkOf({ test: ['NONE'] })!.test).toEqual(['NONE']);
  });

  it('refuses an empty command, naming the field and the rule', () => {
    rejects({ test: ['CMD-SHELL', '  '] }, 'test: CMD-SHELL must be followed by one non-empty shell command');
    rejects({ test: ['CMD-SHELL'] }, 'test: CMD-SHELL must be followed by one non-empty shell command');
    rejects({ test: ['CMD-SHELL', 'a', 'b'] }, 'test: CMD-SHELL must be followed by one non-empty shell command');
    rejects({ test: ['CMD'] }, 'test: CMD must be followed by the command to run');
    rejects({ test: ['CMD', ''] }, 'test: CMD must be followed by the command to run');
  });

  it('refuses an unknown kind of test, and NONE with anything else set', () => {
    rejects({ test: ['curl', 'localhost'] }, 'test: must start with NONE, CMD, CMD-SHELL (got "curl")');
    rejects({ test: ['NONE'], interval_ms: 1000 }, 'test: NONE disables the check, so nothing else may be set with it');
    rejects({ test: ['NONE', 'x'] }, 'test: NONE disables the check, so nothing else may be set with it');
  });

  it('refuses negative durations and retries, and an interval shorter than 100 ms', () => {
    rejects({ test: ['CMD', 'true'], interval_ms: -1 }, 'interval_ms: must be a non-negative integer');
    rejects({ test: ['CMD', 'true'], timeout_ms: -5 }, 'timeout_ms: must be a non-negative integer');
    rejects({ test: ['CMD', 'true'], start_period_ms: 1.5 }, 'start_period_ms: must be a non-negative integer');
    rejects({ test: ['CMD', 'true'], retries: -1 }, 'retries: must be a non-negative integer');
    rejects({ test: ['CMD', 'true'], interval_ms: 50 }, 'interval_ms: must be 0 (the default) or at least 100 ms: each check runs a process in the container');
    expect(checkOf({ test: ['CMD', 'true'], interval_ms: 100 })!.interval_ms).toBe(100);
  });
});
