import { describe, expect, it } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import type { TaskState__Output } from '../../src/gen/shoal/v1/TaskState';
import { changesOrchestration } from '../../src/manager/orchestrator/pass';
import { service, task } from '../fixtures';

const s = service(1);
const at = (t: Task__Output, state: TaskState__Output, extra: Partial<Task__Output> = {}): Task__Output => ({
  ...t,
  ...extra,
  status: { ...t.status!, state, message: `now ${state.toLowerCase()}` },
});

describe('changesOrchestration', () => {
  const assigned = task(s, 1, 'ASSIGNED', { node_id: 'n1' });

  it('is news when a task comes or goes, is placed, runs, ends, or is asked to stop or to a new version', () => {
    expect(changesOrchestration({ after: assigned })).toBe(true);
    expect(changesOrchestration({ before: assigned })).toBe(true);
    expect(changesOrchestration(undefined)).toBe(true);
    expect(changesOrchestration({ before: at(assigned, 'PENDING', { node_id: '' }), after: assigned })).toBe(true);
    expect(changesOrchestration({ before: at(assigned, 'STARTING'), after: at(assigned, 'RUNNING') })).toBe(true);
    expect(changesOrchestration({ before: at(assigned, 'RUNNING'), after: at(assigned, 'FAILED') })).toBe(true);
    expect(changesOrchestration({ before: at(assigned, 'FAILED'), after: at(assigned, 'REJECTED') })).toBe(true);
    expect(changesOrchestration({ before: at(assigned, 'RUNNING'), after: at(assigned, 'RUNNING', { desired_state: 'SHUTDOWN' }) })).toBe(true);
    expect(changesOrchestration({ before: assigned, after: at(assigned, 'ASSIGNED', { spec_version: assigned.spec_version + 1 }) })).toBe(true);
  });

  it('is not news when a placed task reports progress short of running, or a new message', () => {
    expect(changesOrchestration({ before: assigned, after: at(assigned, 'PREPARING') })).toBe(false);
    expect(changesOrchestration({ before: at(assigned, 'PREPARING'), after: at(assigned, 'STARTING') })).toBe(false);
    const running = at(assigned, 'RUNNING');
    const healthy: Task__Output = { ...running, status: { ...running.status!, message: 'healthy' } };
    expect(changesOrchestration({ before: running, after: healthy })).toBe(false);
  });
});
