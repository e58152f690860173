import type { Node__Output } from '../gen/shoal/v1/Node';
import type { Task__Output } from '../gen/shoal/v1/Task';
import { wantsRunning } from '../common/tasks';
import { hostPortsOf } from './host-ports';

/**
 * A node plus counters of what is placed on it. Updated as each task is placed, so filters and
 * scoring never recount the task list.
 */
export class NodeInfo {
  private readonly perService = new Map<string, number>();
  /** Host ports ("9090/tcp") published here, by the number of tasks that publish each. */
  private readonly hostPorts = new Map<string, number>();
  /** Tasks that are meant to keep running here; spread and max-replicas count these. */
  totalTasks = 0;
  reservedCpus = 0;
  reservedMemory = 0;

  constructor(readonly node: Node__Output) {}

  get id(): string {
    return this.node.id;
  }

  /**
   * A task on its way out still holds its reservations until it has stopped, but no longer
   * counts as one of its service's tasks here (as swarmkit's nodeInfo does). Its host ports too
   * are held until it has stopped.
   */
  addTask(task: Task__Output): void {
    const r = task.spec?.resources?.reservations;
    this.reservedCpus += r?.nano_cpus ?? 0;
    this.reservedMemory += r?.memory_bytes ?? 0;
    for (const port of hostPortsOf(task.endpoint)) this.hostPorts.set(port, (this.hostPorts.get(port) ?? 0) + 1);
    if (!wantsRunning(task.desired_state)) return;
    this.perService.set(task.service_id, this.tasksOf(task.service_id) + 1);
    this.totalTasks++;
  }

  hostPortInUse(port: string): boolean {
    return this.hostPorts.has(port);
  }

  tasksOf(serviceId: string): number {
    return this.perService.get(serviceId) ?? 0;
  }

  get cpus(): number {
    return this.node.description?.resources?.nano_cpus ?? 0;
  }

  get freeCpus(): number {
    return this.cpus - this.reservedCpus;
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
