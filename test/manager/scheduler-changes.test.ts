import { describe, expect, it } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import type { TaskState__Output } from '../../src/gen/shoal/v1/TaskState';
import { changesPlacement } from '../../src/manager/scheduling';
import { service, task } from '../fixtures';

const s = service(1);
const at = (t: Task__Output, state: TaskState__Output, extra: Partial<Task__Output> = {}): Task__Output => ({ ...t, ...extra, status: { ...t.status!, state } });

describe('changesPlacement', () => {
  const pending = task(s, 1, 'PENDING', { node_id: '' });
  const assigned = at(pending, 'ASSIGNED', { node_id: 'n1' });

  it('is news when a task becomes pending, is placed, or frees its node', () => {
    expect(changesPlacement({ after: pending })).toBe(true);
    expect(changesPlacement({ before: pending, after: assigned })).toBe(true);
    expect(changesPlacement({ before: at(assigned, 'RUNNING'), after: at(assigned, 'FAILED') })).toBe(true);
    expect(changesPlacement({ before: at(assigned, 'RUNNING') })).toBe(true);
    expect(changesPlacement(undefined)).toBe(true);
  });

  it('is not news when a placed task reports progress, or an unplaceable one gets its reason again', () => {
    expect(changesPlacement({ before: assigned, after: at(assigned, 'RUNNING') })).toBe(false);
    const unplaceable: Task__Output = { ...pending, schedule_error: 'no suitable node' };
    expect(changesPlacement({ before: pending, after: unplaceable })).toBe(false);
    expect(changesPlacement({ before: at(assigned, 'FAILED') })).toBe(false);
  });
});
