import type { Task__Output } from '../src/gen/shoal/v1/Task';
import { isTerminal, now, rank, wantsRunning, type State } from '../src/common/tasks';
import type { AgentExecutor } from '../src/worker/agent';
import type { Report } from '../src/worker/executor';

/**
 * An executor that starts nothing: a task the node is told to run is reported RUNNING at once,
 * and one it is told to stop, SHUTDOWN. The reports go through the agent's own batching, so the
 * dispatcher sees what a real worker sends, minus the container. Only the scale benchmark uses
 * it, to stand in for a thousand nodes on one machine.
 */
export class SimExecutor implements AgentExecutor {
  /** The furthest state reported per assigned task. */
  private readonly reported = new Map<string, State>();

  constructor(private readonly report: Report) {}

  /** Tasks reported RUNNING and not yet stopped, for the benchmark's progress line. */
  get running(): number {
    let n = 0;
    for (const s of this.reported.values()) if (s === 'RUNNING') n++;
    return n;
  }

  setNetworks(): void {}

  setAssignments(tasks: Task__Output[]): void {
    const assigned = new Set<string>();
    for (const t of tasks) {
      assigned.add(t.id);
      const observed = this.observed(t);
      if (t.desired_state === 'RUNNING' && rank(observed) < rank('RUNNING')) this.send(t.id, 'RUNNING', 'started (simulated)');
      else if (!wantsRunning(t.desired_state) && !isTerminal(observed)) this.send(t.id, 'SHUTDOWN', 'shutdown');
    }
    for (const id of this.reported.keys()) if (!assigned.has(id)) this.reported.delete(id);
  }

  logPath(): string {
    return '/dev/null';
  }

  private observed(t: Task__Output): State {
    const mine = this.reported.get(t.id);
    const theirs = t.status?.state ?? 'NEW';
    return mine && rank(mine) > rank(theirs) ? mine : theirs;
  }

  private send(taskId: string, state: State, message: string): void {
    this.reported.set(taskId, state);
    this.report(taskId, { state, message, err: '', timestamp: now() });
  }
}
