import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { applyRolloutFlags, rolloutOptions } from '../../src/cli/commands/rollout-flags';
import { blankSpec } from '../../src/cli/commands/service-flags';
import { rolloutProgress } from '../../src/cli/rollout';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import type { UpdateStatus__Output } from '../../src/gen/shoal/v1/UpdateStatus';
import { validateServiceSpec } from '../../src/manager/validate';
import { task } from '../fixtures';

const NOW = Date.UTC(2026, 0, 2);
const iso = (ms: number) => new Date(ms).toISOString();

function parse(args: string[]): Record<string, unknown> {
  const cmd = rolloutOptions(new Command('update').exitOverride().configureOutput({ writeErr: () => undefined }));
  cmd.parse(args, { from: 'user' });
  return cmd.opts();
}

describe('rollout flags', () => {
  it('set only what they name on the update and rollback configs', () => {
    const spec = blankSpec();
    applyRolloutFlags(spec, parse(['--update-parallelism', '2', '--update-delay', '5s', '--update-failure-action', 'rollback', '--update-monitor', '10s', '--update-max-failure-ratio', '0.2', '--update-order', 'start-first', '--rollback-parallelism', '0']));
    expect(spec.update_config).toEqual({ parallelism: 2, delay_ms: 5000, failure_action: 'rollback', monitor_ms: 10_000, max_failure_ratio: 0.2, order: 'start-first' });
    expect(spec.rollback_config).toEqual({ parallelism: 0 });
  });

  it('keep a stored config’s other fields', () => {
    const spec = validateServiceSpec({ name: 'web', task_template: { container: { image: 'x' } }, update_config: { parallelism: 3 } });
    applyRolloutFlags(spec, parse(['--update-delay', '1s']));
    expect(spec.update_config).toMatchObject({ parallelism: 3, delay_ms: 1000 });
  });

  it('refuse bad values, naming the flag', () => {
    expect(() => parse(['--update-failure-action', 'retry'])).toThrow('--update-failure-action must be pause, continue or rollback, got "retry"');
    expect(() => parse(['--rollback-failure-action', 'rollback'])).toThrow('--rollback-failure-action must be pause or continue, got "rollback"');
    expect(() => parse(['--update-order', 'random'])).toThrow('--update-order must be stop-first or start-first, got "random"');
    expect(() => parse(['--update-max-failure-ratio', '1.5'])).toThrow('--update-max-failure-ratio must be a number from 0 to 1, got "1.5"');
    expect(() => parse(['--rollback-max-failure-ratio', '-0.1'])).toThrow('--rollback-max-failure-ratio must be a number from 0 to 1');
    expect(() => parse(['--update-delay', '-5s'])).toThrow('invalid --update-delay "-5s"');
    expect(() => parse(['--rollback-monitor', 'soon'])).toThrow('invalid --rollback-monitor "soon"');
  });
});

describe('rollout progress', () => {
  function service(status: Partial<UpdateStatus__Output> | null): Service__Output {
    const spec = validateServiceSpec({ name: 'web', mode: { replicated: { replicas: 3 } }, task_template: { container: { image: 'x' } }, update_config: { monitor_ms: 5000 } });
    const update_status = status && { state: 'updating', started_at: iso(NOW - 60_000), completed_at: '', message: 'update in progress', ...status };
    return { id: 's', version: 1, spec, spec_version: 2, created_at: '', updated_at: '', errors: [], update_status, previous_spec: null, previous_spec_version: 1, virtual_ips: [] };
  }
  const at = (ms: number) => ({ created_at: iso(ms - 1000), status: { state: 'RUNNING' as const, timestamp: iso(ms), message: '', err: '', container: null, health: '' } });

  it('shows each slot: updated, monitored, starting, or waiting on the old spec', () => {
    const s = service({});
    const tasks = [
      task(s, 1, 'RUNNING', { spec_version: 2, ...at(NOW - 6000) }),
      task(s, 2, 'RUNNING', { spec_version: 2, ...at(NOW - 1000) }),
      task(s, 3, 'RUNNING', { spec_version: 1, ...at(NOW - 600_000) }),
      task(s, 3, 'PREPARING', { spec_version: 2, desired_state: 'READY', created_at: iso(NOW - 500) }),
      task(s, 10, 'RUNNING', { spec_version: 1, ...at(NOW - 600_000) }),
    ];
    const p = rolloutProgress(s, tasks, NOW);
    expect(p.slots).toEqual([
      ['web.1', 'updated'],
      ['web.2', 'running, monitoring'],
      ['web.3', 'preparing'],
      ['web.10', 'waiting (old spec)'],
    ]);
    expect(p.updated).toBe(1);
    expect(p.ended).toBeUndefined();
  });

  it('says why a new task cannot be placed', () => {
    const s = service({});
    const unplaced = task(s, 1, 'PENDING', { spec_version: 2, node_id: '', schedule_error: 'no suitable node (insufficient memory on 1 node)', created_at: iso(NOW - 500) });
    expect(rolloutProgress(s, [unplaced], NOW).unplaceable).toBe('task web.1 cannot be placed: no suitable node (insufficient memory on 1 node)');
    expect(rolloutProgress(s, [task(s, 1, 'RUNNING', { spec_version: 2 })], NOW).unplaceable).toBeUndefined();
  });

  it('ends with the status that ended the rollout', () => {
    for (const state of ['completed', 'paused', 'rollback_completed', 'rollback_paused']) {
      expect(rolloutProgress(service({ state }), [], NOW).ended!.state).toBe(state);
    }
    expect(rolloutProgress(service({ state: 'rollback_started' }), [], NOW).ended).toBeUndefined();
  });

  it('waits for the leader to begin, unless nothing is on an old spec', () => {
    const s = service(null);
    expect(rolloutProgress(s, [task(s, 1, 'RUNNING', { spec_version: 1 })], NOW).ended).toBeUndefined();
    expect(rolloutProgress(s, [task(s, 1, 'RUNNING', { spec_version: 2 })], NOW).ended!.state).toBe('completed');
  });
});
