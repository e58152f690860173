/**
 * Waits for `work` to settle, but no longer than `ms`; never throws. For courtesy calls on the
 * way out (resigning, revoking a lease) whose effect also comes about by itself, later, when they
 * cannot be made: a stop must not hang on a store that has lost its quorum.
 */
export async function settleWithin(work: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (!work) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** How long a stopping manager gives each courtesy call to etcd, which answers in milliseconds when it can. */
export const STOP_COURTESY_MS = 1000;
