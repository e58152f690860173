import * as fs from 'node:fs';
import type { LogLine } from '../gen/shoal/v1/LogLine';

const POLL_MS = 200;

/**
 * Parses conmon's k8s-file format: "<RFC3339Nano> <stdout|stderr> <P|F> <text>". A "P" (partial)
 * record continues on the next record of the same stream; only "F" ends a line.
 */
export class K8sFileParser {
  private pending = new Map<string, string>();
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
      const joined = (this.pending.get(stream) ?? '') + text;
      if (tag === 'P') {
        this.pending.set(stream, joined);
        continue;
      }
      this.pending.delete(stream);
      out.push({ task_id: this.taskId, timestamp, stream, line: joined });
    }
    return out;
  }
}

export interface LogReadOptions {
  tail: number;
  follow: boolean;
  signal: AbortSignal;
}

/**
 * Sends a task's log lines to onLines: the last `tail` lines (all when negative), then, when
 * following, new lines as conmon appends them, until the signal aborts.
 */
export async function readTaskLog(file: string, taskId: string, opts: LogReadOptions, onLines: (lines: LogLine[]) => void): Promise<void> {
  const parser = new K8sFileParser(taskId);
  let offset = 0;
  const readNew = (): LogLine[] => {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch {
      return [];
    }
    try {
      const size = fs.fstatSync(fd).size;
      // conmon starts the file over when it reaches --log-size-max.
      if (size < offset) offset = 0;
      if (size === offset) return [];
      const buf = Buffer.alloc(size - offset);
      const n = fs.readSync(fd, buf, 0, buf.length, offset);
      offset += n;
      return parser.push(buf.subarray(0, n).toString('utf8'));
    } finally {
      fs.closeSync(fd);
    }
  };
  const first = readNew();
  onLines(opts.tail >= 0 ? first.slice(Math.max(0, first.length - opts.tail)) : first);
  if (!opts.follow) return;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const lines = readNew();
      if (lines.length) onLines(lines);
    }, POLL_MS);
    opts.signal.addEventListener('abort', () => {
      clearInterval(timer);
      resolve();
    });
  });
}
