import { describe, expect, it } from 'vitest';
import { assess } from '../../src/cli/converge';
import { service, task } from '../fixtures';

describe('convergence assessment', () => {
  it('is converged when every replica runs and nothing is left stopping', () => {
    const s = service(2);
    expect(assess(s, [task(s, 1, 'RUNNING'), task(s, 2, 'RUNNING')], new Map())).toMatchObject({ running: 2, desired: 2, converged: true });
  });

  it('counts a task whose health check has not passed as starting, not running', () => {
    const s = service(2);
    const starting = task(s, 2, 'STARTING', { status: { state: 'STARTING', err: '', message: '', timestamp: '', container: null, health: 'starting' } });
    expect(assess(s, [task(s, 1, 'RUNNING'), starting], new Map())).toMatchObject({ running: 1, starting: 1, converged: false });
  });

  it('waits for surplus tasks to stop after a scale-down', () => {
    const s = service(1);
    const tasks = [task(s, 1, 'RUNNING'), task(s, 2, 'RUNNING', { desired_state: 'SHUTDOWN' })];
    expect(assess(s, tasks, new Map())).toMatchObject({ running: 1, stopping: 1, converged: false });
  });

  it('says why when tasks ended and will not be restarted', () => {
    const s = service(1, { condition: 'none' });
    const status = { state: 'FAILED' as const, err: 'task: non-zero exit (3)', message: '', timestamp: '', container: null, health: '' };
    // Ended, but the orchestrator has not decided yet: not stuck.
    expect(assess(s, [task(s, 1, 'FAILED', { status })], new Map()).stuck).toBeUndefined();
    const failed = task(s, 1, 'FAILED', { desired_state: 'SHUTDOWN', status });
    expect(assess(s, [failed], new Map()).stuck).toContain('web.1: task: non-zero exit (3)');
    // A restart made a newer task in the slot: not stuck either.
    expect(assess(s, [failed, task(s, 1, 'PENDING')], new Map()).stuck).toBeUndefined();
  });

  it('gives up on a slot that keeps failing, naming the error', () => {
    const s = service(1);
    const rejected = task(s, 1, 'REJECTED', { desired_state: 'SHUTDOWN', status: { state: 'REJECTED', err: 'No such image: nope', message: '', timestamp: '', container: null, health: '' } });
    const next = task(s, 1, 'PENDING');
    expect(assess(s, [rejected, next], new Map([[1, 3]])).stuck).toContain('No such image: nope');
    expect(assess(s, [rejected, next], new Map([[1, 1]])).stuck).toBeUndefined();
  });
});
