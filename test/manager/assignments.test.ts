import { describe, expect, it } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { diffAssignments } from '../../src/manager/dispatcher/assignments';
import { applyAssignments } from '../../src/worker/assignments';
import { service, task } from '../fixtures';

const s = service(3);
const ids = (tasks: Iterable<Task__Output>) => [...tasks].map((t) => t.id).sort();

/** One session: what the dispatcher sends for each successive set, applied as the agent applies it. */
function session(sets: Task__Output[][]): { sent: { changed: string[]; removed: string[] }[]; seen: Map<string, Task__Output> } {
  let record = new Map<string, string>();
  let seen = new Map<string, Task__Output>();
  const sent: { changed: string[]; removed: string[] }[] = [];
  sets.forEach((set, i) => {
    const { changed, removed, next } = diffAssignments(record, set);
    record = next;
    seen = applyAssignments(seen, { tasks: i === 0 ? set : changed, removed_task_ids: i === 0 ? [] : removed, incremental: i > 0, registry_auth: {}, networks: null });
    sent.push({ changed: ids(changed), removed: removed.sort() });
  });
  return { sent, seen };
}

describe('incremental assignments', () => {
  const [a, b, c] = [task(s, 1, 'ASSIGNED'), task(s, 2, 'RUNNING'), task(s, 3, 'RUNNING')];

  it('sends only new tasks, tasks whose desired state moved, and the ids of tasks gone', () => {
    const stopping = { ...b, desired_state: 'SHUTDOWN' as const };
    const { sent, seen } = session([[a, b], [a, b, c], [a, stopping, c], [stopping, c]]);
    expect(sent).toEqual([
      { changed: ids([a, b]), removed: [] },
      { changed: [c.id], removed: [] },
      { changed: [b.id], removed: [] },
      { changed: [], removed: [a.id] },
    ]);
    expect(ids(seen.values())).toEqual(ids([b, c]));
    expect(seen.get(b.id)!.desired_state).toBe('SHUTDOWN');
  });

  it('ignores a status change: the worker reported it itself', () => {
    const { sent } = session([[a], [{ ...a, status: { ...a.status!, state: 'RUNNING' } }]]);
    expect(sent[1]).toEqual({ changed: [], removed: [] });
  });

  it('replaces the whole set on a complete message, as a new session begins with', () => {
    const seen = applyAssignments(new Map([[a.id, a]]), { tasks: [c], removed_task_ids: [], incremental: false, registry_auth: {}, networks: null });
    expect(ids(seen.values())).toEqual([c.id]);
  });
});
