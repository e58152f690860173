import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { internal } from '../../common/errors';
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

  async start(id: string): Promise<void> {
    const r = await this.call(['start', id]);
    if (!r.ok) throw internal(r.message);
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

  async kill(id: string, signal: string): Promise<void> {
    const r = await this.call(['kill', id, signal]);
    if (!r.ok) throw internal(r.message);
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
