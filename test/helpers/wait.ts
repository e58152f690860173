export interface WaitOptions {
  /** What is awaited, for the error: "waiting for <what>". */
  what: string;
  timeoutMs?: number;
  intervalMs?: number;
}

/** What a truthy value of T can be. */
type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

const show = (v: unknown): string => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 300 ? `${s.slice(0, 300)}…` : s;
};

/**
 * Polls `cond` until it returns a truthy value, and returns that value. A throw counts as "not
 * yet". On timeout it fails saying what it waited for, with the last value or error seen, so a
 * test waits on a condition instead of sleeping and never asserts how long something took.
 */
export async function waitFor<T>(cond: () => T | Promise<T>, { what, timeoutMs = 10_000, intervalMs = 20 }: WaitOptions): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: string;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v as Truthy<T>;
      last = `last value: ${show(v)}`;
    } catch (err) {
      last = `last error: ${(err as Error).message ?? show(err)}`;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what} (${last})`);
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, Math.max(1, deadline - Date.now()))));
  }
}

/** Runs `p` but gives up after `ms`, failing with what it was doing. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Awaits every clean-up step, even when one fails, then fails naming every step that did. */
export async function allSettledOrThrow(steps: (Promise<unknown> | undefined)[]): Promise<void> {
  const failed = (await Promise.allSettled(steps)).filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length) throw new Error(failed.map((r) => (r.reason as Error).message ?? String(r.reason)).join('\n'));
}
