import type { Node__Output } from '../gen/shoal/v1/Node';
import type { Task__Output } from '../gen/shoal/v1/Task';

/**
 * A node plus counters of what is placed on it. Updated as each task is placed, so filters and
 * scoring never recount the task list.
 */
export class NodeInfo {
  private readonly perService = new Map<string, number>();
  totalTasks = 0;
  reservedCpus = 0;
  reservedMemory = 0;

  constructor(readonly node: Node__Output) {}

  get id(): string {
    return this.node.id;
  }

  addTask(task: Task__Output): void {
    this.perService.set(task.service_id, this.tasksOf(task.service_id) + 1);
    this.totalTasks++;
    const r = task.spec?.resources?.reservations;
    this.reservedCpus += r?.nano_cpus ?? 0;
    this.reservedMemory += r?.memory_bytes ?? 0;
  }

  tasksOf(serviceId: string): number {
    return this.perService.get(serviceId) ?? 0;
  }

  get freeCpus(): number {
    return (this.node.description?.resources?.nano_cpus ?? 0) - this.reservedCpus;
  }

  get freeMemory(): number {
    return (this.node.description?.resources?.memory_bytes ?? 0) - this.reservedMemory;
  }
}

/** NodeInfos by node id, counting the active tasks; tasks on nodes not in the list are ignored. */
export function buildNodeInfos(nodes: Node__Output[], active: Task__Output[]): Map<string, NodeInfo> {
  const infos = new Map(nodes.map((n) => [n.id, new NodeInfo(n)]));
  for (const t of active) infos.get(t.node_id)?.addTask(t);
  return infos;
}
