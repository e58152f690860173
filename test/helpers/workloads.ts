/**
 * Commands for the test image's containers. A process that is PID 1 of its namespace gets only the
 * signals it handles, so a bare `sleep` ignores SIGTERM and every removal would wait out the 10 s
 * grace period. These trap TERM and exit, as a well-behaved service does, and idle in one `sleep`
 * rather than forking a new one several times a second.
 */
export const IDLE_SCRIPT = 'trap "exit 0" TERM; sleep 1000000 & wait';

/** Idles until stopped. */
export const IDLE = ['sh', '-c', IDLE_SCRIPT];

/** Runs `script`, then idles until stopped. */
export const thenIdle = (script: string): string[] => ['sh', '-c', `${script}; ${IDLE_SCRIPT}`];
