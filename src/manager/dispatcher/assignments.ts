import type { Task__Output } from '../../gen/shoal/v1/Task';

/**
 * What a worker must hear of its task set: a task is news when it is new or its desired state
 * moved. Status is the worker's own report, and a task's spec never changes once it exists.
 */
const assignmentKey = (t: Task__Output) => t.desired_state;

export interface AssignmentChanges {
  changed: Task__Output[];
  removed: string[];
}

/**
 * The changes from what a session was last sent to `tasks`, and the record to keep for the next
 * call. Pure: `sent` is the caller's memory of the session (task id → key), not modified.
 */
export function diffAssignments(sent: ReadonlyMap<string, string>, tasks: Task__Output[]): AssignmentChanges & { next: Map<string, string> } {
  const next = new Map(tasks.map((t) => [t.id, assignmentKey(t)]));
  const changed = tasks.filter((t) => sent.get(t.id) !== next.get(t.id));
  const removed = [...sent.keys()].filter((id) => !next.has(id));
  return { changed, removed, next };
}
