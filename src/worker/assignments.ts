import type { Assignments__Output } from '../gen/shoal/v1/Assignments';
import type { Task__Output } from '../gen/shoal/v1/Task';

/**
 * The worker's copy of its task set, kept from the session's messages: a complete message
 * replaces it, an incremental one changes it. A new session always begins with a complete one.
 */
export function applyAssignments(current: ReadonlyMap<string, Task__Output>, msg: Assignments__Output): Map<string, Task__Output> {
  const next = msg.incremental ? new Map(current) : new Map<string, Task__Output>();
  for (const id of msg.removed_task_ids) next.delete(id);
  for (const t of msg.tasks) next.set(t.id, t);
  return next;
}
