import { describe, expect, it } from 'vitest';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import { assess } from '../../src/cli/converge';
import { service, task } from '../fixtures';

const globalService = (): Service__Output => {
  const s = service(0);
  return { ...s, spec: { ...s.spec!, mode: { mode: 'global', global: {} } } };
};

describe('convergence of a global service', () => {
  it('is not converged at 0 of 0 before the orchestrator has made its tasks', () => {
    expect(assess(globalService(), [], new Map(), 100)).toMatchObject({ desired: 0, converged: false });
  });

  it('is converged at 0 of 0 once no task has come for a while (no eligible node)', () => {
    expect(assess(globalService(), [], new Map(), 5000)).toMatchObject({ desired: 0, converged: true });
  });

  it('wants one running task per task the orchestrator made, one per node', () => {
    const s = globalService();
    const tasks = [task(s, 0, 'RUNNING', { node_id: 'n1' }), task(s, 0, 'PENDING', { node_id: 'n2' })];
    expect(assess(s, tasks, new Map(), 100)).toMatchObject({ running: 1, desired: 2, converged: false });
    tasks[1] = task(s, 0, 'RUNNING', { node_id: 'n2' });
    expect(assess(s, tasks, new Map(), 100)).toMatchObject({ running: 2, desired: 2, converged: true });
  });
});
