import type { Node__Output } from '../gen/shoal/v1/Node';
import type { Task__Output } from '../gen/shoal/v1/Task';
import { pipelineFor, type Filter } from './filters';
import { buildNodeInfos, type NodeInfo } from './node-info';

export interface Placement {
  taskId: string;
  nodeId: string;
}

export interface Unplaced {
  taskId: string;
  reason: string;
}

export interface ScheduleResult {
  placements: Placement[];
  unplaced: Unplaced[];
}

/**
 * Places pending tasks on nodes. `active` are tasks already on nodes and not terminal: they
 * hold reservations and count for spread. Same input, same output.
 */
export function schedule(nodes: Node__Output[], active: Task__Output[], pending: Task__Output[]): ScheduleResult {
  const infos = [...buildNodeInfos(nodes, active).values()].sort((a, b) => compareIds(a.id, b.id));
  const result: ScheduleResult = { placements: [], unplaced: [] };
  for (const group of groupTasks(pending)) scheduleGroup(group, infos, result);
  return result;
}

/**
 * Tasks of one service and spec version share their feasibility, so they are scheduled together.
 * Oldest first, so a service that has waited longest gets scarce capacity first.
 */
function groupTasks(pending: Task__Output[]): Task__Output[][] {
  const sorted = [...pending].sort(
    (a, b) =>
      compareIds(a.created_at, b.created_at) ||
      compareIds(a.service_id, b.service_id) ||
      a.spec_version - b.spec_version ||
      a.slot - b.slot ||
      compareIds(a.id, b.id),
  );
  const groups = new Map<string, Task__Output[]>();
  for (const t of sorted) {
    const key = `${t.service_id}\0${t.spec_version}`;
    const group = groups.get(key);
    if (group) group.push(t);
    else groups.set(key, [t]);
  }
  return [...groups.values()];
}

function scheduleGroup(group: Task__Output[], infos: NodeInfo[], result: ScheduleResult): void {
  let pipeline: Filter[];
  try {
    pipeline = pipelineFor(group[0]);
  } catch (err) {
    const reason = `invalid placement: ${(err as Error).message}`;
    for (const t of group) result.unplaced.push({ taskId: t.id, reason });
    return;
  }
  const failures = new Map<Filter, number>();
  const failedFilter = (info: NodeInfo, task: Task__Output) => pipeline.find((f) => !f.check(task, info));
  const reject = (f: Filter) => failures.set(f, (failures.get(f) ?? 0) + 1);

  const candidates: NodeInfo[] = [];
  for (const info of infos) {
    const failed = failedFilter(info, group[0]);
    if (failed) reject(failed);
    else candidates.push(info);
  }

  const serviceId = group[0].service_id;
  for (let i = 0; i < group.length; i++) {
    const task = group[i];
    const best = pickBest(candidates, serviceId);
    if (best < 0) {
      const reason = explain(pipeline, failures, infos.length);
      for (const t of group.slice(i)) result.unplaced.push({ taskId: t.id, reason });
      return;
    }
    const info = candidates[best];
    info.addTask(task);
    result.placements.push({ taskId: task.id, nodeId: info.id });
    // Only the chosen node's counters changed, so only it can have stopped fitting.
    const failed = failedFilter(info, task);
    if (failed) {
      reject(failed);
      candidates.splice(best, 1);
    }
  }
}

/** Spread: fewest tasks of this service, then fewest tasks overall, then lowest node id. */
function pickBest(candidates: NodeInfo[], serviceId: string): number {
  let best = -1;
  let bestService = 0;
  let bestTotal = 0;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i];
    const service = c.tasksOf(serviceId);
    // Candidates are sorted by id, so on a full tie the earlier one stays.
    if (best < 0 || service < bestService || (service === bestService && c.totalTasks < bestTotal)) {
      best = i;
      bestService = service;
      bestTotal = c.totalTasks;
    }
  }
  return best;
}

function explain(pipeline: Filter[], failures: Map<Filter, number>, nodeCount: number): string {
  if (nodeCount === 0) return 'no suitable node (no nodes in the cluster)';
  const parts = pipeline.filter((f) => failures.has(f)).map((f) => f.explain(failures.get(f)!));
  return `no suitable node (${parts.join('; ')})`;
}

// Plain code-unit order: locale-independent, so every manager sorts alike.
const compareIds = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
