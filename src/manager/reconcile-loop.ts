import type { Logger } from '../common/logger';

/** A pass reads desired and observed state, converges, and may ask to run again at a time (ms). */
export type Pass = () => Promise<number | undefined>;

const RESYNC_MS = 10_000;
const RETRY_MS = 500;

/**
 * Runs a level-triggered pass whenever kicked, one pass at a time; kicks during a pass coalesce
 * into one more pass. Also runs on a resync timer, so a missed watch event costs nothing.
 */
export class ReconcileLoop {
  private running = false;
  private again = false;
  private stopped = true;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly name: string,
    private readonly pass: Pass,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.stopped = false;
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    let next = Date.now() + RESYNC_MS;
    try {
      const wakeAt = await this.pass();
      if (wakeAt !== undefined) next = Math.min(next, wakeAt);
    } catch (err) {
      this.log.warn({ err, loop: this.name }, 'reconcile pass failed; retrying');
      next = Date.now() + RETRY_MS;
    }
    this.running = false;
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    if (this.again) {
      this.again = false;
      this.kick();
      return;
    }
    this.timer = setTimeout(() => this.kick(), Math.max(0, next - Date.now()));
    this.timer.unref();
  }
}
