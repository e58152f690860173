import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { applyTemplateFlags, blankSpec, templateOptions, type TemplateFlags } from '../../src/cli/commands/service-flags';
import type { HealthConfig__Output } from '../../src/gen/shoal/v1/HealthConfig';

/** The flags as commander parses them from a command line. */
function parse(...argv: string[]): TemplateFlags {
  const cmd = templateOptions(new Command('create').exitOverride().configureOutput({ writeErr: () => undefined }));
  cmd.parse(argv, { from: 'user' });
  return cmd.opts();
}

const apply = (check: HealthConfig__Output | null, creating: boolean, ...argv: string[]) => {
  const spec = blankSpec();
  spec.task_template!.container!.healthcheck = check;
  applyTemplateFlags(spec, parse(...argv), creating);
  return spec.task_template!.container!.healthcheck;
};

const stored: HealthConfig__Output = { test: ['CMD-SHELL', 'probe'], interval_ms: 500, timeout_ms: 2000, start_period_ms: 1000, retries: 5 };

describe('health flags', () => {
  it('set a check on create, leaving unset fields 0 (the image’s or the default)', () => {
    expect(apply(null, true, '--health-cmd', 'wget -qO- http://127.0.0.1/', '--health-interval', '500ms', '--health-retries', '2')).toEqual({
      test: ['CMD-SHELL', 'wget -qO- http://127.0.0.1/'],
      interval_ms: 500,
      timeout_ms: 0,
      start_period_ms: 0,
      retries: 2,
    });
    expect(apply(null, true, '--health-timeout', '3s', '--health-start-period', '1m')).toEqual({ test: [], interval_ms: 0, timeout_ms: 3000, start_period_ms: 60_000, retries: 0 });
    expect(apply(null, true)).toBeNull();
  });

  it('change only what they name on update, and 0 or an empty command resets a field', () => {
    expect(apply(stored, false, '--health-retries', '1')).toEqual({ ...stored, retries: 1 });
    expect(apply(stored, false, '--health-interval', '0', '--health-cmd', '')).toEqual({ ...stored, test: [], interval_ms: 0 });
    expect(apply(stored, false)).toEqual(stored);
  });

  it('--no-healthcheck replaces the check with NONE; a later --health-* flag starts over from nothing', () => {
    const none = apply(stored, false, '--no-healthcheck');
    expect(none).toEqual({ test: ['NONE'], interval_ms: 0, timeout_ms: 0, start_period_ms: 0, retries: 0 });
    expect(apply(none, false, '--health-interval', '1s')).toEqual({ test: [], interval_ms: 1000, timeout_ms: 0, start_period_ms: 0, retries: 0 });
  });

  it('refuse an empty command on create, --no-healthcheck with a --health-* flag, and a bad duration', () => {
    expect(() => apply(null, true, '--health-cmd', ' ')).toThrow('--health-cmd must not be empty (--no-healthcheck turns the image’s check off)');
    expect(() => apply(stored, false, '--no-healthcheck', '--health-cmd', 'x', '--health-retries', '2')).toThrow('--no-healthcheck conflicts with --health-cmd, --health-retries');
    expect(() => parse('--health-interval', '-1s')).toThrow('invalid --health-interval "-1s"');
    expect(() => parse('--health-retries', 'many')).toThrow('--health-retries must be a non-negative integer, got "many"');
  });
});
