import { status } from '@grpc/grpc-js';
import type { Service__Output } from '../gen/shoal/v1/Service';
import { hasCode } from '../common/errors';
import type { Logger } from '../common/logger';
import { now } from '../common/tasks';
import type { Store } from './store/store';

export type Loop = 'orchestrator' | 'scheduler' | 'allocator';

/** A loop that failed for some service runs again after this, even if nothing kicks it. */
export const FAILED_SERVICE_RETRY_MS = 1000;

// Stored on the service and shown by `service ps`; a long etcd message says no more past this.
const MAX_MESSAGE_LENGTH = 500;

/** A conflict only means the loop read stale state: it retries, and nobody needs to hear of it. */
export const isConflict = (err: unknown): boolean => hasCode(err, status.ABORTED);

export const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * The service with `loop`'s error set to `message` (or cleared, when undefined), or null when
 * that changes nothing. An error that repeats keeps the time it was first seen.
 */
export function withConvergenceError(service: Service__Output, loop: Loop, message: string | undefined, at: string): Service__Output | null {
  const errors = service.errors ?? [];
  const text = message?.slice(0, MAX_MESSAGE_LENGTH);
  const mine = errors.find((e) => e.loop === loop);
  if (mine?.message === text || (!mine && text === undefined)) return null;
  const others = errors.filter((e) => e.loop !== loop);
  return { ...service, errors: text === undefined ? others : [...others, { loop, message: text, since: at }] };
}

/**
 * Records on each service what `loop` failed to do for it this pass (failures: service id →
 * sentence), and clears what it no longer fails at. Best effort: a write that fails here is
 * logged, and the next pass tries again.
 */
export async function reportConvergence(store: Pick<Store, 'commit'>, loop: Loop, services: Service__Output[], failures: Map<string, string>, log: Logger): Promise<void> {
  const at = now();
  for (const service of services) {
    const message = failures.get(service.id);
    const changed = withConvergenceError(service, loop, message, at);
    if (!changed) continue;
    if (message) log.warn({ service: service.spec?.name, serviceId: service.id, loop }, `cannot converge service: ${message}`);
    else log.info({ service: service.spec?.name, serviceId: service.id, loop }, 'service converges again');
    await store.commit([{ type: 'update', kind: 'services', obj: changed }]).catch((err) => {
      if (!isConflict(err)) log.warn({ err, serviceId: service.id, loop }, 'recording the service’s convergence error failed');
    });
  }
}
