import * as fs from 'node:fs';
import type { LogLine } from '../gen/shoal/v1/LogLine';
import { rotatedLogFiles } from './runtime/log-rotation';

const POLL_MS = 200;

/**
 * Parses conmon's k8s-file format: "<RFC3339Nano> <stdout|stderr> <P|F> <text>". A "P" (partial)
 * record is a piece of a line conmon read before its newline arrived. It is joined with the
 * records of the same stream that follow it, up to the "F" that ends the line; but once the other
 * stream writes in between, or the log ends, the piece is a line of its own. So every line comes
 * out whole, in the order it was written, and no stdout text is ever glued to stderr text.
 */
export class K8sFileParser {
  private partial: LogLine | undefined;
  private rest = '';

  constructor(private readonly taskId: string) {}

  push(chunk: string): LogLine[] {
    const lines = (this.rest + chunk).split('\n');
    this.rest = lines.pop() ?? '';
    const out: LogLine[] = [];
    for (const raw of lines) {
      const m = /^(\S+) (stdout|stderr) ([PF]) ?(.*)$/.exec(raw);
      if (!m) continue;
      const [, timestamp, stream, tag, text] = m;
      if (this.partial && this.partial.stream !== stream) out.push(...this.flush());
      const line = this.partial ? { ...this.partial, line: this.partial.line + text } : { task_id: this.taskId, timestamp, stream, line: text };
      this.partial = undefined;
      if (tag === 'P') this.partial = line;
      else out.push(line);
    }
    return out;
  }

  /** The piece of a line held back, as a line of its own: the log ended or paused in the middle of a line. */
  flush(): LogLine[] {
    const p = this.partial;
    this.partial = undefined;
    return p ? [p] : [];
  }
}

export interface LogReadOptions {
  tail: number;
  follow: boolean;
  /** Unix ms: older lines are left out (0: none are). */
  sinceMs?: number;
  signal: AbortSignal;
}

/** Reads one log file from where it was left, through an open descriptor that survives the file being renamed. */
class LogCursor {
  private fd: number | undefined;
  private ino = 0;
  private offset = 0;

  constructor(private readonly file: string) {}

  /** New bytes, as text; after conmon swapped in a new file, the rest of the old one and then the new one. */
  read(): string {
    let text = '';
    for (;;) {
      if (this.fd === undefined && !this.open()) return text;
      text += this.drain();
      let current: fs.Stats;
      try {
        current = fs.statSync(this.file);
      } catch {
        return text;
      }
      if (current.ino === this.ino) return text;
      // conmon replaced the file (--log-size-max): what it wrote to the old one before is read above
      this.close();
    }
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private open(): boolean {
    try {
      this.fd = fs.openSync(this.file, 'r');
    } catch {
      return false;
    }
    this.ino = fs.fstatSync(this.fd).ino;
    this.offset = 0;
    return true;
  }

  private drain(): string {
    const fd = this.fd!;
    const size = fs.fstatSync(fd).size;
    // truncated under us: start over
    if (size < this.offset) this.offset = 0;
    if (size === this.offset) return '';
    const buf = Buffer.alloc(size - this.offset);
    const n = fs.readSync(fd, buf, 0, buf.length, this.offset);
    this.offset += n;
    return buf.subarray(0, n).toString('utf8');
  }
}

/**
 * Sends a task's log lines to onLines: the last `tail` lines (all when negative) of its rotated
 * files, oldest first, and of the live one, written since `sinceMs`; then, when following, new lines as conmon appends
 * them, until the signal aborts.
 */
export async function readTaskLog(file: string, taskId: string, opts: LogReadOptions, onLines: (lines: LogLine[]) => void): Promise<void> {
  const parser = new K8sFileParser(taskId);
  const first: LogLine[] = [];
  for (const old of rotatedLogFiles(file)) {
    try {
      first.push(...parser.push(fs.readFileSync(old, 'utf8')));
    } catch {
      // rotated away while we listed them
    }
  }
  const cursor = new LogCursor(file);
  try {
    first.push(...parser.push(cursor.read()));
    if (!opts.follow) first.push(...parser.flush());
    const since = opts.sinceMs ?? 0;
    // A line whose stamp does not parse is kept: hiding output is the worse mistake.
    const recent = since > 0 ? first.filter((l) => !(Date.parse(l.timestamp ?? '') < since)) : first;
    onLines(opts.tail >= 0 ? recent.slice(Math.max(0, recent.length - opts.tail)) : recent);
    if (!opts.follow) return;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const text = cursor.read();
        // a piece of a line with nothing after it for a whole poll is shown rather than held back
        const lines = text ? parser.push(text) : parser.flush();
        if (lines.length) onLines(lines);
      }, POLL_MS);
      const stop = () => {
        clearInterval(timer);
        resolve();
      };
      if (opts.signal.aborted) stop();
      else opts.signal.addEventListener('abort', stop);
    });
  } finally {
    cursor.close();
  }
}
