import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../common/logger';

/** How often the live logs are checked for a file conmon swapped in. */
const POLL_MS = 500;

/** The task a file in the log dir belongs to: `<id>.log`, `<id>.log.N`; null for anything else (conmon's `<id>.log.tmp`). */
export function logFileTask(name: string): string | null {
  return /^(.+)\.log(?:\.\d+)?$/.exec(name)?.[1] ?? null;
}

/** The rotated files of a log that exist, oldest first: <log>.N … <log>.1 (not <log>.0, a second name of the live file). */
export function rotatedLogFiles(log: string): string[] {
  const base = `${path.basename(log)}.`;
  let names: string[];
  try {
    names = fs.readdirSync(path.dirname(log));
  } catch {
    return [];
  }
  return names
    .filter((n) => n.startsWith(base) && /^[1-9][0-9]*$/.test(n.slice(base.length)))
    .map((n) => Number(n.slice(base.length)))
    .sort((a, b) => b - a)
    .map((i) => `${log}.${i}`);
}

function inode(file: string): number | null {
  try {
    return fs.lstatSync(file).ino;
  } catch {
    return null;
  }
}

function renameIfThere(from: string, to: string): void {
  try {
    fs.renameSync(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/**
 * Keeps rotated task logs around conmon's --log-size-max, which does not rotate. Measured with
 * conmon 2.1.6: when the next record would take what conmon has written past the limit, it syncs
 * the log, creates <log>.tmp and renames it over <log>, so everything written before is gone; bytes
 * already in the file when conmon starts are not counted; a record is written whole, so a file
 * may pass the limit by one record (at most conmon's 8 KiB read).
 *
 * So <log>.0 is kept as a second name of the file conmon writes. Once conmon has swapped in a new
 * file, <log>.0 still names the old one: that becomes <log>.1, older ones move up one, the one past
 * `maxFiles - 1` goes, and <log>.0 names the new file. The swap is found by polling: a task that
 * fills two files between two polls loses the one in between, and swaps while shoald is down drop
 * what conmon wrote, but the disk stays bounded either way.
 */
export class LogRotator {
  /** Container id → its log, for containers whose conmon is writing. */
  private readonly logs = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly maxFiles: number,
    private readonly log?: Logger,
    private readonly pollMs = POLL_MS,
  ) {}

  /**
   * Before conmon starts writing `file`: conmon would append to what is there without counting
   * it, so an old non-empty file (a container made again under the same id) is rotated first.
   */
  prepare(file: string): void {
    let size = 0;
    try {
      size = fs.lstatSync(file).size;
    } catch {
      return;
    }
    if (!size) return;
    if (this.maxFiles > 1) {
      this.shift(file, file);
      fs.rmSync(`${file}.0`, { force: true });
    } else {
      fs.rmSync(file, { force: true });
    }
  }

  /** conmon has opened `file` for container `id`: keep its rotated files from now on. */
  track(id: string, file: string): void {
    if (this.maxFiles <= 1 || this.closed) return;
    // left by a larger --log-max-files
    for (const old of rotatedLogFiles(file)) if (Number(old.slice(file.length + 1)) >= this.maxFiles) fs.rmSync(old, { force: true });
    this.logs.set(id, file);
    this.check(file);
    if (!this.timer) {
      this.timer = setInterval(() => this.checkAll(), this.pollMs);
      this.timer.unref();
    }
  }

  /** The container is gone: one last look (conmon may have swapped files as it finished), then stop watching. */
  untrack(id: string): void {
    const file = this.logs.get(id);
    if (!file) return;
    this.logs.delete(id);
    this.checkLogged(file);
    if (!this.logs.size) this.stopPolling();
  }

  /** Stops watching; the logs and their rotated files stay. */
  close(): void {
    this.closed = true;
    this.logs.clear();
    this.stopPolling();
  }

  private stopPolling(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Rotates `file` if conmon has swapped in a new one since the last look. */
  check(file: string): void {
    const live = inode(file);
    if (live === null) return;
    const zero = `${file}.0`;
    const kept = inode(zero);
    if (kept === live) return;
    if (kept !== null) this.shift(file, zero);
    try {
      fs.linkSync(file, zero);
    } catch (e) {
      // conmon swapped again meanwhile (ENOENT) or a concurrent check linked it (EEXIST): the next look sorts it out
      if (!['ENOENT', 'EEXIST'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
    }
  }

  /** <log>.(n-1) → <log>.n …, then `newest` → <log>.1; what was last falls off. */
  private shift(file: string, newest: string): void {
    for (let i = this.maxFiles - 1; i >= 1; i--) renameIfThere(i === 1 ? newest : `${file}.${i - 1}`, `${file}.${i}`);
  }

  private checkAll(): void {
    for (const file of this.logs.values()) this.checkLogged(file);
  }

  private checkLogged(file: string): void {
    try {
      this.check(file);
    } catch (err) {
      this.log?.warn({ err, file }, 'rotating a task log failed');
    }
  }
}
