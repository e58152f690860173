import type { Node__Output } from '../../gen/shoal/v1/Node';
import type { Service__Output } from '../../gen/shoal/v1/Service';
import type { Task__Output } from '../../gen/shoal/v1/Task';
import type { Op, Store } from '../store/store';
import { reconcileGlobal } from './global';
import { reconcileOrphanedTasks, reconcileReplicatedOnNodes, type Plan } from './replicated';

/** One orchestrator pass over every service: returns when it next needs to run, if it has a deadline. */
export async function orchestrate(store: Store): Promise<number | undefined> {
  const [services, tasks, nodes] = await Promise.all([
    store.list<Service__Output>('services'),
    store.list<Task__Output>('tasks'),
    store.list<Node__Output>('nodes'),
  ]);
  const byService = new Map<string, Task__Output[]>(services.map((s) => [s.id, []]));
  const orphans: Task__Output[] = [];
  for (const t of tasks) (byService.get(t.service_id) ?? orphans).push(t);

  const now = Date.now();
  const plans: Plan[] = services.map((s) =>
    s.spec!.mode!.global ? reconcileGlobal(s, nodes, byService.get(s.id)!, now) : reconcileReplicatedOnNodes(s, byService.get(s.id)!, nodes, now),
  );
  plans.push(reconcileOrphanedTasks(orphans));

  const ops: Op[] = [];
  let wakeAt: number | undefined;
  for (const p of plans) {
    for (const obj of p.create) ops.push({ type: 'create', kind: 'tasks', obj });
    for (const obj of p.update) ops.push({ type: 'update', kind: 'tasks', obj });
    for (const t of p.remove) ops.push({ type: 'delete', kind: 'tasks', id: t.id, version: t.version });
    if (p.wakeAt !== undefined) wakeAt = Math.min(wakeAt ?? Infinity, p.wakeAt);
  }
  await store.commit(ops);
  return wakeAt;
}
