import type { Node__Output } from '../../gen/shoal/v1/Node';
import type { Service__Output } from '../../gen/shoal/v1/Service';
import type { Task__Output } from '../../gen/shoal/v1/Task';
import { wantsRunning } from '../../common/tasks';
import { placementMatcher } from '../../scheduler/eligibility';
import { reconcileSlot, startPlan, stopTask, type Plan } from './replicated';

/**
 * Decides, from a global service, the cluster's nodes and the service's tasks, which tasks to
 * create, change and delete so that every eligible node runs one. Pure: the caller commits it.
 *
 * Each node is a slot (slot 0, the node id set at creation, as swarmkit does), with the restart
 * policy and history of a replicated slot. An active node that satisfies the constraints and
 * platforms gets a task, whether ready or down (a down node is not gone: it may come back). A
 * paused node keeps the task it has but gets no new one. Tasks on a drained node, or on one
 * that no longer matches (relabelled), are shut down; those of a removed node are deleted.
 */
export function reconcileGlobal(service: Service__Output, nodes: Node__Output[], tasks: Task__Output[], nowMs: number): Plan {
  const byNode = new Map<string, Task__Output[]>();
  for (const t of tasks) {
    const list = byNode.get(t.node_id);
    if (list) list.push(t);
    else byNode.set(t.node_id, [t]);
  }

  let matches: (node: Node__Output) => boolean;
  try {
    matches = placementMatcher(service.spec?.task_template?.placement);
  } catch {
    // Validation refuses such constraints, so only old data has one. Every node gets a task, and
    // the scheduler's "invalid placement" on each tells the user what is wrong.
    matches = () => true;
  }

  const stopped: Task__Output[][] = [];
  const kept = new Map<string, Task__Output[]>();
  for (const node of nodes) {
    const nodeTasks = byNode.get(node.id) ?? [];
    byNode.delete(node.id);
    const availability = node.spec?.availability;
    if (availability === 'drain' || !matches(node)) stopped.push(nodeTasks);
    else if (availability === 'active' || nodeTasks.some((t) => wantsRunning(t.desired_state))) kept.set(node.id, nodeTasks);
  }
  const { plan, update } = startPlan(service, kept, nowMs);
  if (!update) return plan;
  for (const nodeTasks of stopped) for (const t of nodeTasks) if (wantsRunning(t.desired_state)) stopTask(t, plan);
  for (const [nodeId, nodeTasks] of kept) {
    reconcileSlot(service, nodeTasks, nowMs, plan, { slot: 0, nodeId }, { replace: update.replace.has(nodeId), order: update.order });
  }
  // A removed node's tasks have nowhere to run, and its agent is gone: nothing is left to stop.
  for (const rest of byNode.values()) plan.remove.push(...rest);
  return plan;
}
