import type { Node__Output } from '../gen/shoal/v1/Node';
import type { Task__Output } from '../gen/shoal/v1/Task';
import { now } from '../common/tasks';
import { partitionTasks, schedule } from '../scheduler/schedule';
import type { Op, Store } from './store/store';

/** One scheduler pass: places every unassigned task that wants to run, and records why others cannot be. */
export async function schedulePending(store: Store): Promise<undefined> {
  const [nodes, tasks] = await Promise.all([store.list<Node__Output>('nodes'), store.list<Task__Output>('tasks')]);
  const { pending, active } = partitionTasks(tasks);
  if (!pending.length) return undefined;
  const byId = new Map(pending.map((t) => [t.id, t]));
  const { placements, unplaced } = schedule(nodes, active, pending);

  const ops: Op[] = [];
  const timestamp = now();
  for (const p of placements) {
    const t = byId.get(p.taskId)!;
    const status = { ...t.status!, state: 'ASSIGNED' as const, timestamp, message: 'scheduler assigned task to node', err: '' };
    const obj: Task__Output = { ...t, node_id: p.nodeId, schedule_error: '', status };
    ops.push({ type: 'update', kind: 'tasks', obj });
  }
  for (const u of unplaced) {
    const t = byId.get(u.taskId)!;
    if (t.schedule_error === u.reason) continue;
    const status = { ...t.status!, timestamp, err: u.reason };
    const obj: Task__Output = { ...t, schedule_error: u.reason, status };
    ops.push({ type: 'update', kind: 'tasks', obj });
  }
  await store.commit(ops);
  return undefined;
}
