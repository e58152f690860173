import pino, { type Logger } from 'pino';

export type { Logger };

/** The daemon's structured logger; components take a child with their own `component` field. */
export function createLogger(level = process.env.SHOAL_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** For tests and one-shot tools that should stay quiet unless something breaks. */
export function quietLogger(): Logger {
  return pino({ level: process.env.SHOAL_LOG_LEVEL ?? 'warn' });
}
