import { randomBytes } from 'node:crypto';
import { TaskState, type TaskState__Output } from '../gen/shoal/v1/TaskState';
import type { Task__Output } from '../gen/shoal/v1/Task';

export type State = TaskState__Output;

// The enum's declaration order is the lifecycle order (see objects.proto).
const RANK = new Map<string, number>(Object.keys(TaskState).map((name, i) => [name, i]));

export const rank = (s: State): number => RANK.get(s) ?? 0;

/** Terminal observed states: the task will never run again. */
export const isTerminal = (s: State): boolean => rank(s) >= rank('COMPLETE');

/** Observed states a task reaches by itself (it exited, or could not start), not by being stopped. */
export const endedByItself = (s: State): boolean => s === 'COMPLETE' || s === 'FAILED' || s === 'REJECTED';

/** Desired states that ask for the task to exist and (eventually) run. */
export const wantsRunning = (desired: State): boolean => rank(desired) <= rank('RUNNING');

/** "web.3" for replicated tasks and "agent.<node id>" for global ones (slot 0), as Docker names them. */
/** Whether a task (or a service, by its endpoint spec) publishes ports: its containers then join the ingress network. */
export const publishesPorts = (endpoint: { ports: unknown[] } | null | undefined): boolean => (endpoint?.ports.length ?? 0) > 0;

export const taskName = (t: Pick<Task__Output, 'service_name' | 'slot' | 'node_id'>): string => `${t.service_name}.${t.slot || t.node_id}`;

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

/** A 25-character lower-case base-36 id like Swarm's; 128 bits of randomness. */
export function newId(): string {
  const bytes = randomBytes(25);
  let id = '';
  for (const b of bytes) id += ALPHABET[b % 36];
  return id;
}

export const now = (): string => new Date().toISOString();
