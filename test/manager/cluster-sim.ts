import type { Node__Output } from '../../src/gen/shoal/v1/Node';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { isTerminal, wantsRunning } from '../../src/common/tasks';
import { reconcileGlobal } from '../../src/manager/orchestrator/global';
import { reconcileReplicatedOnNodes, type Plan } from '../../src/manager/orchestrator/replicated';
import { partitionTasks, schedule } from '../../src/scheduler/schedule';

/**
 * The leader's loops and the agents on plain data: an orchestrator pass, a scheduler pass, then
 * every reachable agent runs what it was given and stops what it was told to stop.
 */
export class ClusterSim {
  readonly tasks = new Map<string, Task__Output>();
  now = Date.UTC(2026, 0, 2);

  constructor(
    public nodes: Node__Output[],
    public service: Service__Output,
  ) {}

  setNode(id: string, change: (n: Node__Output) => Node__Output): void {
    this.nodes = this.nodes.map((n) => (n.id === id ? change(n) : n));
  }

  orchestrate(): Plan {
    const tasks = [...this.tasks.values()];
    const plan = this.service.spec!.mode!.global
      ? reconcileGlobal(this.service, this.nodes, tasks, this.now)
      : reconcileReplicatedOnNodes(this.service, tasks, this.nodes, this.now);
    const touched = [...plan.update, ...plan.remove].map((t) => t.id);
    if (new Set(touched).size !== touched.length) throw new Error('a plan changed and deleted the same task');
    for (const t of plan.create) this.tasks.set(t.id, t);
    for (const t of plan.update) this.tasks.set(t.id, t);
    for (const t of plan.remove) this.tasks.delete(t.id);
    return plan;
  }

  schedule(): void {
    const { pending, active } = partitionTasks([...this.tasks.values()]);
    const { placements, unplaced } = schedule(this.nodes, active, pending);
    for (const p of placements) {
      const t = this.tasks.get(p.taskId)!;
      this.tasks.set(t.id, { ...t, node_id: p.nodeId, schedule_error: '', status: { ...t.status!, state: 'ASSIGNED' } });
    }
    for (const u of unplaced) this.tasks.set(u.taskId, { ...this.tasks.get(u.taskId)!, schedule_error: u.reason });
  }

  /** Agents of ready nodes run their assigned tasks and stop the ones no longer wanted; reports only move forward. */
  runAgents(): void {
    const ready = new Set(this.nodes.filter((n) => n.status!.state === 'NODE_READY').map((n) => n.id));
    for (const t of this.tasks.values()) {
      if (!ready.has(t.node_id) || isTerminal(t.status!.state)) continue;
      if (!wantsRunning(t.desired_state)) this.tasks.set(t.id, { ...t, status: { ...t.status!, state: 'SHUTDOWN' } });
      else if (t.status!.state === 'ASSIGNED') this.tasks.set(t.id, { ...t, status: { ...t.status!, state: 'RUNNING' } });
    }
  }

  /** Runs the loops until nothing changes, as the level-triggered loops would. */
  settle(): void {
    for (let i = 0; i < 20; i++) {
      const before = JSON.stringify([...this.tasks.values()]);
      this.orchestrate();
      this.schedule();
      this.runAgents();
      if (JSON.stringify([...this.tasks.values()]) === before) return;
    }
    throw new Error('the cluster did not settle');
  }

  /** Tasks the orchestrator counts as the service's: live ones. */
  live(): Task__Output[] {
    return [...this.tasks.values()].filter((t) => wantsRunning(t.desired_state));
  }

  /** Containers running somewhere, as far as their agents last said. */
  running(): Task__Output[] {
    return [...this.tasks.values()].filter((t) => t.status!.state === 'RUNNING');
  }

  perNode(tasks: Task__Output[]): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const t of tasks) counts[t.node_id] = (counts[t.node_id] ?? 0) + 1;
    return counts;
  }
}
