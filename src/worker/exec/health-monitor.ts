import { formatDuration } from '../../common/units';
import { afterProbe, type HealthCheck, type HealthState, type HealthStatus, type ProbeResult } from './health';
import type { ContainerRuntime } from './runtime';

/** The longest output of a failed check kept for the task's error (Docker keeps 4 KiB per check; one line says enough). */
const MAX_FAILURE_CHARS = 200;

/**
 * The health-check loop of one running container. It has a loop of its own because it is the one
 * thing the worker does on a clock rather than in answer to a change (new assignments, an exit):
 * the executor stays level-triggered, and this only turns time into health states, calling back
 * when the status changes. A check runs `interval` after the last one ended (the first `interval`
 * after the start, as Docker does), never two at once. It stops by itself once unhealthy, which
 * is final; the task controller that owns it stops it when the container stops or goes away.
 */
export class HealthMonitor {
  private state: HealthState;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly runtime: Pick<ContainerRuntime, 'exec'>,
    private readonly containerId: string,
    private readonly check: HealthCheck,
    initial: HealthStatus,
    /** When the container started (ms): the start period counts from then. */
    private readonly startedAtMs: number,
    private readonly onChange: (state: HealthState) => void,
  ) {
    this.state = { status: initial, failingStreak: 0, lastFailure: '' };
    this.schedule();
  }

  get current(): HealthState {
    return this.state;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped || this.state.status === 'unhealthy') return;
    this.timer = setTimeout(() => void this.probeOnce(), this.check.intervalMs);
  }

  private async probeOnce(): Promise<void> {
    const result = await this.probe();
    if (this.stopped) return;
    const before = this.state.status;
    this.state = afterProbe(this.state, result, this.check, this.startedAtMs);
    if (this.state.status !== before) this.onChange(this.state);
    this.schedule();
  }

  private async probe(): Promise<ProbeResult> {
    const atMs = Date.now();
    try {
      const r = await this.runtime.exec(this.containerId, this.check.argv, this.check.timeoutMs);
      if (r.timedOut) return { ok: false, failure: `timed out after ${formatDuration(this.check.timeoutMs)}`, atMs };
      const said = r.output.split('\n').filter((l) => l.trim()).at(-1)?.trim().slice(0, MAX_FAILURE_CHARS);
      return { ok: r.exitCode === 0, failure: `exit status ${r.exitCode}${said ? `: ${said}` : ''}`, atMs };
    } catch (err) {
      return { ok: false, failure: `the check could not run: ${(err as Error).message}`, atMs };
    }
  }
}
