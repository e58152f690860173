import { constants as fsConstants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { failedPrecondition, internal } from '../../common/errors';
import type { Exec } from './exec';

export type RuncStatus = 'created' | 'running' | 'stopped';

export interface RuncState {
  pid: number;
  status: RuncStatus;
  /** Absolute cgroup dirs runc made, by controller. */
  cgroupPaths: string[];
}

/**
 * Turns runc's stderr (with --log-format=json: one JSON object a line) into its own error sentence,
 * without the "runc create failed: unable to start container process:" wrapping.
 */
export function runcMessage(stderr: string): string {
  let msg = '';
  for (const line of stderr.split('\n')) {
    const t = line.trim();
    if (!t) continue;
    try {
      const j = JSON.parse(t) as { level?: string; msg?: string };
      if (j.msg && (j.level === 'error' || j.level === 'fatal' || !msg)) msg = j.msg;
    } catch {
      msg = t;
    }
  }
  return msg
    .replace(/^runc \w+ failed: /, '')
    .replace(/^unable to start container process: /, '')
    .trim();
}

/** After `runc exec` exits, how long its output may take to arrive (it is usually there at once). */
const EXEC_DRAIN_MS = 200;

export class Runc {
  constructor(
    readonly runcPath: string,
    readonly root: string,
    private readonly run: Exec,
  ) {}

  /** Global args every runc call gets (conmon passes them via --runtime-arg). */
  globalArgs(): string[] {
    return [`--root=${this.root}`, '--log-format=json'];
  }

  private async call(args: string[]): Promise<{ ok: boolean; message: string; stdout: string }> {
    const r = await this.run(this.runcPath, [...this.globalArgs(), ...args]);
    return { ok: r.code === 0, message: runcMessage(r.stderr) || `runc ${args[0]} exited with status ${r.code}`, stdout: r.stdout };
  }

  /**
   * What `runc start` does, without a runc process (a Go start-up is ~30 ms of CPU, a sixth of a
   * container's start): the created container's init waits to open exec.fifo in runc's state dir
   * for writing; reading the byte it writes lets it exec the command, and removing the fifo marks
   * the container running (runc's state, and ours, says "created" while it is there). The read end
   * is opened non-blocking, so an init that died never holds a thread: until its byte comes, init
   * is checked as runc checks it.
   */
  async start(id: string, initPid: number): Promise<void> {
    const fifo = path.join(this.root, id, 'exec.fifo');
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw failedPrecondition(`container ${id} cannot be started: it is not created`);
      throw e;
    }
    try {
      const buf = Buffer.alloc(16);
      for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
        // 0 bytes: init has not opened its end yet (it does right after `runc create` returns)
        const n = await fh.read(buf, 0, buf.length, null).then((r) => r.bytesRead, (e: NodeJS.ErrnoException) => (e.code === 'EAGAIN' ? 0 : Promise.reject(e)));
        if (n > 0) break;
        if ((await processStart(initPid)) === null) throw failedPrecondition(`container ${id} cannot be started: its process is already dead`);
        await new Promise((r) => setTimeout(r, delay));
      }
    } finally {
      await fh.close();
    }
    await fs.rm(fifo, { force: true });
  }

  /**
   * `runc exec`: argv in the container, with its process spec from the bundle; the started
   * process's host pid goes to pidFile. runc is killed after runHowLongMs, a backstop for a
   * caller that kills the process sooner: runc waits for the process's output to end, which a
   * process it left in the container (`cmd &`) may hold open after it has exited (so under
   * Docker, too, such a command times out). It is done when runc exits.
   */
  async exec(id: string, argv: string[], pidFile: string, runHowLongMs: number): Promise<{ code: number; stdout: string; message: string }> {
    const args = [...this.globalArgs(), 'exec', '--pid-file', pidFile, id, ...argv];
    const r = await this.run(this.runcPath, args, { timeoutMs: runHowLongMs, killSignal: 'SIGKILL', drainMs: EXEC_DRAIN_MS });
    return { code: r.code, stdout: r.stdout, message: runcMessage(r.stderr) };
  }

  /** `runc delete --force`: kills what is left and removes runc's state and cgroups. */
  async delete(id: string): Promise<void> {
    const r = await this.call(['delete', '--force', id]);
    if (!r.ok && (await this.exists(id))) throw internal(r.message);
  }

  async exists(id: string): Promise<boolean> {
    return fs.stat(path.join(this.root, id, 'state.json')).then(
      () => true,
      () => false,
    );
  }

  /** Container ids runc has state for. */
  async ids(): Promise<string[]> {
    const names = await fs.readdir(this.root).catch(() => [] as string[]);
    const out: string[] = [];
    await Promise.all(names.map(async (n) => ((await this.exists(n)) ? out.push(n) : 0)));
    return out;
  }

  /**
   * runc's view of a container without spawning runc: read its state.json and check the init
   * process the way `runc state` does (same pid and start time, not a zombie; exec.fifo present
   * means created but not started). Null when runc has no such container.
   */
  async state(id: string): Promise<RuncState | null> {
    let raw: string;
    try {
      raw = await fs.readFile(path.join(this.root, id, 'state.json'), 'utf8');
    } catch {
      return null;
    }
    let j: { init_process_pid?: number; init_process_start?: number | string; cgroup_paths?: Record<string, string> };
    try {
      j = JSON.parse(raw);
    } catch {
      return null; // being written; treat as absent for now
    }
    const pid = j.init_process_pid ?? 0;
    const cgroupPaths = Object.values(j.cgroup_paths ?? {});
    const alive = pid > 0 && (await processStart(pid)) === String(j.init_process_start);
    if (!alive) return { pid: 0, status: 'stopped', cgroupPaths };
    const fifo = await fs.stat(path.join(this.root, id, 'exec.fifo')).then(
      () => true,
      () => false,
    );
    return { pid, status: fifo ? 'created' : 'running', cgroupPaths };
  }
}

/** A live (non-zombie) process's start time in clock ticks, from /proc/<pid>/stat; null if gone. */
export async function processStart(pid: number): Promise<string | null> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state); starttime is field 22
    if (f[0] === 'Z' || f[0] === 'X') return null;
    return f[19] ?? null;
  } catch {
    return null;
  }
}
