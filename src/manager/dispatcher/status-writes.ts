import type { Task__Output } from '../../gen/shoal/v1/Task';
import type { TaskStatusUpdate__Output } from '../../gen/shoal/v1/TaskStatusUpdate';
import { rank } from '../../common/tasks';
import type { Op } from '../store/store';

/** Status reports one node sent in one call. */
export interface NodeReports {
  nodeId: string;
  updates: TaskStatusUpdate__Output[];
}

/**
 * The writes that record status reports, for any number of nodes at once: a report counts only
 * from the node its task is on, and only when it moves the task forward. Reports on one task
 * become one write (of the furthest state), compare-and-swap on the task as `task` gives it.
 * Pure: `task` reads the caller's view of the store.
 */
export function statusWrites(reports: NodeReports[], task: (id: string) => Task__Output | undefined): Op[] {
  const next = new Map<string, Task__Output>();
  for (const { nodeId, updates } of reports) {
    for (const u of updates) {
      const t = next.get(u.task_id) ?? task(u.task_id);
      if (!t || t.node_id !== nodeId || !u.status) continue;
      if (rank(u.status.state) <= rank(t.status!.state)) continue;
      next.set(u.task_id, { ...t, status: u.status });
    }
  }
  return [...next.values()].map((obj): Op => ({ type: 'update', kind: 'tasks', obj }));
}
