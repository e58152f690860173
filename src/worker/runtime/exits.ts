import { watch, promises as fs, type FSWatcher } from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../common/logger';
import { isId } from './paths';

export type ExitCallback = (id: string, exitCode: number) => void;

/** Reads conmon's exit file: the exit code (128+signal for a signal); null if absent or not yet written. */
export async function readExitFile(file: string): Promise<number | null> {
  try {
    const t = (await fs.readFile(file, 'utf8')).trim();
    return /^-?[0-9]+$/.test(t) ? Number(t) : null;
  } catch {
    return null;
  }
}

/**
 * Reports each exit file conmon writes in the exit dir, once per container: fs.watch for speed, a
 * periodic scan as a safety net (missed events, a watch that broke). The first scan also reports
 * exits that happened while nobody was watching (e.g. while the daemon was down).
 */
export class ExitWatcher {
  private readonly callbacks = new Set<ExitCallback>();
  private readonly reported = new Set<string>();
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private scanning: Promise<void> | null = null;

  constructor(
    private readonly dir: string,
    private readonly log: Logger | undefined,
    private readonly scanMs = 2000,
  ) {}

  subscribe(cb: ExitCallback): () => void {
    this.callbacks.add(cb);
    if (!this.timer) this.begin();
    return () => {
      this.callbacks.delete(cb);
      if (this.callbacks.size === 0) this.close();
    };
  }

  /** Forget a container (it was removed), so a new one with the same id is reported again. */
  forget(id: string): void {
    this.reported.delete(id);
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private begin(): void {
    try {
      this.watcher = watch(this.dir, (_event, name) => {
        if (name && isId(name)) void this.check(name);
      });
      this.watcher.on('error', (e) => {
        this.log?.warn({ err: e }, 'exit dir watch failed; relying on the periodic scan');
        this.watcher?.close();
        this.watcher = null;
      });
    } catch (e) {
      this.log?.warn({ err: e }, 'cannot watch the exit dir; relying on the periodic scan');
    }
    this.timer = setInterval(() => void this.scan(), this.scanMs);
    this.timer.unref();
    void this.scan();
  }

  /** One pass over the exit dir. */
  scan(): Promise<void> {
    this.scanning ??= (async () => {
      try {
        const names = await fs.readdir(this.dir).catch(() => [] as string[]);
        await Promise.all(names.filter((n) => isId(n) && !this.reported.has(n)).map((n) => this.check(n)));
      } finally {
        this.scanning = null;
      }
    })();
    return this.scanning;
  }

  private async check(id: string): Promise<void> {
    if (this.reported.has(id)) return;
    const code = await readExitFile(path.join(this.dir, id));
    if (code === null || this.reported.has(id)) return;
    this.reported.add(id);
    for (const cb of [...this.callbacks]) {
      try {
        cb(id, code);
      } catch (e) {
        this.log?.error({ err: e, id }, 'exit callback threw');
      }
    }
  }
}
