import type { Node__Output } from '../gen/shoal/v1/Node';
import type { Task__Output } from '../gen/shoal/v1/Task';
import { isTerminal, rank, wantsRunning } from '../common/tasks';
import { pipelineFor, type Filter } from './filters';
import { buildNodeInfos, type NodeInfo } from './node-info';
import { parseSpread } from './preferences';
import { SpreadTree } from './spread-tree';

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

const PENDING = 'pending';

/**
 * What a task is to the scheduler: PENDING when it waits for it (wanted, not yet assigned — a
 * global task already names its node), `node <id>` while it holds that node (assigned and not
 * ended), '' otherwise. A change that keeps it says nothing new to the scheduler.
 */
export function schedulingRole(t: Task__Output): string {
  const state = t.status!.state;
  if (rank(state) < rank('ASSIGNED')) return wantsRunning(t.desired_state) ? PENDING : '';
  return t.node_id && !isTerminal(state) ? `node ${t.node_id}` : '';
}

/** Splits a cluster's tasks into those waiting for the scheduler and those holding a node (schedulingRole). */
export function partitionTasks(tasks: Task__Output[]): { pending: Task__Output[]; active: Task__Output[] } {
  const pending: Task__Output[] = [];
  const active: Task__Output[] = [];
  for (const t of tasks) {
    const role = schedulingRole(t);
    if (role === PENDING) pending.push(t);
    else if (role) active.push(t);
  }
  return { pending, active };
}

/**
 * Places pending tasks on nodes. `active` are tasks already on nodes and not terminal: they
 * hold reservations and count for spread. A pending task that already names its node (global
 * mode) is only checked against that node. Same input, same output.
 */
export function schedule(nodes: Node__Output[], active: Task__Output[], pending: Task__Output[]): ScheduleResult {
  const byId = buildNodeInfos(nodes, active);
  const infos = [...byId.values()].sort((a, b) => compareIds(a.id, b.id));
  const result: ScheduleResult = { placements: [], unplaced: [] };
  // Tasks bound to one node go first: they have nowhere else to go.
  for (const group of groupTasks(pending.filter((t) => t.node_id))) schedulePinned(group, byId, result);
  for (const group of groupTasks(pending.filter((t) => !t.node_id))) scheduleGroup(group, infos, result);
  return result;
}

/**
 * Tasks of one service and spec version share their feasibility, so they are scheduled together.
 * Oldest first, so a service that has waited longest gets scarce capacity first.
 */
function groupTasks(pending: Task__Output[]): Task__Output[][] {
  const groups = new Map<string, Task__Output[]>();
  for (const t of pending) {
    const key = `${t.service_id}\0${t.spec_version}`;
    const group = groups.get(key);
    if (group) group.push(t);
    else groups.set(key, [t]);
  }
  const sorted = [...groups.values()];
  for (const group of sorted) {
    group.sort((a, b) => compareIds(a.created_at, b.created_at) || a.slot - b.slot || compareIds(a.node_id, b.node_id) || compareIds(a.id, b.id));
  }
  return sorted.sort(
    (a, b) => compareIds(a[0].created_at, b[0].created_at) || compareIds(a[0].service_id, b[0].service_id) || a[0].spec_version - b[0].spec_version,
  );
}

/** The group's filters and spread labels, or the reason they are unusable (reported for every task). */
function placementOf(group: Task__Output[], result: ScheduleResult): { pipeline: Filter[]; labels: string[] } | undefined {
  try {
    const labels = (group[0].spec?.placement?.preferences ?? []).map((p) => parseSpread(p.spread));
    return { pipeline: pipelineFor(group[0]), labels };
  } catch (err) {
    const reason = `invalid placement: ${(err as Error).message}`;
    for (const t of group) result.unplaced.push({ taskId: t.id, reason });
    return undefined;
  }
}

const failedFilter = (pipeline: Filter[], info: NodeInfo, task: Task__Output) => pipeline.find((f) => !f.check(task, info));

function schedulePinned(group: Task__Output[], byId: Map<string, NodeInfo>, result: ScheduleResult): void {
  const placement = placementOf(group, result);
  if (!placement) return;
  for (const task of group) {
    const info = byId.get(task.node_id);
    const failed = info && failedFilter(placement.pipeline, info, task);
    if (!info) {
      result.unplaced.push({ taskId: task.id, reason: `no suitable node (node ${task.node_id} is not in the cluster)` });
    } else if (failed) {
      result.unplaced.push({ taskId: task.id, reason: explain(placement.pipeline, new Map([[failed, 1]]), 1) });
    } else {
      info.addTask(task);
      result.placements.push({ taskId: task.id, nodeId: info.id });
    }
  }
}

function scheduleGroup(group: Task__Output[], infos: NodeInfo[], result: ScheduleResult): void {
  const placement = placementOf(group, result);
  if (!placement) return;
  const { pipeline, labels } = placement;
  const failures = new Map<Filter, number>();
  const reject = (f: Filter) => failures.set(f, (failures.get(f) ?? 0) + 1);

  const candidates: NodeInfo[] = [];
  const others: NodeInfo[] = [];
  for (const info of infos) {
    const failed = failedFilter(pipeline, info, group[0]);
    if (failed) {
      reject(failed);
      others.push(info);
    } else {
      candidates.push(info);
    }
  }
  const tree = new SpreadTree(group[0].service_id, labels, candidates, others);
  const recheck = pipeline.filter((f) => f.dynamic);

  for (let i = 0; i < group.length; i++) {
    const task = group[i];
    const info = tree.next();
    if (!info) {
      const reason = explain(pipeline, failures, infos.length);
      for (const t of group.slice(i)) result.unplaced.push({ taskId: t.id, reason });
      return;
    }
    info.addTask(task);
    result.placements.push({ taskId: task.id, nodeId: info.id });
    // Only the chosen node's counters changed, so only it can have stopped fitting.
    const failed = failedFilter(recheck, info, task);
    if (failed) reject(failed);
    tree.placed(!failed);
  }
}

/** Swarm's wording: the filters that excluded the most nodes first, then in pipeline order. */
function explain(pipeline: Filter[], failures: Map<Filter, number>, nodeCount: number): string {
  if (nodeCount === 0) return 'no suitable node (no nodes in the cluster)';
  const failed = pipeline.filter((f) => failures.has(f)).sort((a, b) => failures.get(b)! - failures.get(a)!);
  return `no suitable node (${failed.map((f) => f.explain(failures.get(f)!)).join('; ')})`;
}

// Plain code-unit order: locale-independent, so every manager sorts alike.
const compareIds = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
