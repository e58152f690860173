import { type ChildProcess, fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { internal } from '../../common/errors';
import type { Logger } from '../../common/logger';
import type { ConmonRequest, ExecRequest, SpawnReply, SpawnRequest } from './spawner';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a short-lived helper (runc, mount, umount) and collects its output; never throws for a non-zero exit. */
export type Exec = (cmd: string, args: string[], opts?: Pick<ExecRequest, 'cwd' | 'drainMs' | 'killSignal'> & { timeoutMs?: number }) => Promise<ExecResult>;

/** What conmon reported: the container's pid, or runc's stderr when `runc create` failed. */
export type ConmonResult = { pid: number } | { runcError: string };

type Pending = { resolve: (m: SpawnReply) => void; reject: (e: Error) => void; what: string; timer: NodeJS.Timeout; child: ChildProcess | undefined };

/** How much longer than a request's own timeout the daemon waits for the spawner's answer. */
const GRACE_MS = 10_000;

/**
 * The daemon's side of the process spawner (spawner.ts): every process the runtime starts is
 * forked by that small child rather than by the daemon, whose fork() cost grows with its RSS.
 * Started on first use, started again on the next request if it dies (requests in flight then
 * fail), ended by close(). While idle it does not keep the daemon's event loop alive.
 */
export class Spawner {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;
  /** Whether the current spawner is ref'ed. */
  private busy = false;

  constructor(private readonly log?: Logger) {}

  /** The spawner's pid while it runs (tests). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  readonly exec: Exec = async (cmd, args, opts = {}) => {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const m = await this.request<ExecRequest>({ kind: 'exec', cmd, args, ...opts, timeoutMs }, `${path.basename(cmd)} ${args.join(' ')}`);
    if ('code' in m) return m;
    if ('error' in m) {
      const e = new Error(m.error) as NodeJS.ErrnoException;
      if (m.errno) e.code = m.errno;
      throw e;
    }
    throw internal(`the process spawner sent an unexpected answer to ${cmd}: ${JSON.stringify(m)}`);
  };

  async conmon(r: Omit<ConmonRequest, 'id' | 'kind'>): Promise<ConmonResult> {
    const m = await this.request<ConmonRequest>({ kind: 'conmon', ...r }, 'conmon');
    if ('pid' in m) return { pid: m.pid };
    if ('runcError' in m) return { runcError: m.runcError };
    if ('error' in m) throw internal(m.error);
    throw internal(`the process spawner sent an unexpected answer to conmon: ${JSON.stringify(m)}`);
  }

  /** Ends the spawner (processes it started, conmon included, keep running). Requests after this fail. */
  close(): void {
    this.closed = true;
    this.failAll(internal('the runtime was closed'));
    const c = this.child;
    if (!c) return;
    this.child = undefined;
    if (c.connected) c.disconnect(); // the spawner exits when its channel closes
    const t = setTimeout(() => c.kill('SIGKILL'), 2000);
    t.unref();
    c.once('exit', () => clearTimeout(t));
  }

  private request<R extends SpawnRequest>(body: Omit<R, 'id'> & { timeoutMs: number }, what: string): Promise<SpawnReply> {
    if (this.closed) return Promise.reject(internal(`cannot run ${what}: the runtime was closed`));
    const id = this.nextId++;
    return new Promise<SpawnReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(id)?.reject(internal(`the process spawner did not answer within ${Math.round((body.timeoutMs + GRACE_MS) / 1000)} s while running ${what}`));
      }, body.timeoutMs + GRACE_MS);
      this.pending.set(id, { resolve, reject, what, timer, child: undefined });
      this.dispatch(id, { ...body, id } as unknown as SpawnRequest, true);
    });
  }

  /** Sends a request to the spawner, starting one if needed; a request it could not send is sent once more to a fresh spawner. */
  private dispatch(id: number, msg: SpawnRequest, retry: boolean): void {
    const p = this.pending.get(id);
    if (!p) return;
    let child: ChildProcess;
    try {
      child = this.ensure();
    } catch (e) {
      this.settle(id)?.reject(internal(`cannot start the process spawner: ${(e as Error).message}`));
      return;
    }
    p.child = child;
    if (!this.busy) this.setRef(child, true);
    child.send(msg, (err: Error | null) => {
      if (!err || p.child !== child || !this.pending.has(id)) return;
      // the spawner is dying (its 'exit' is not here yet): the request never reached it, so it is safe to send again
      if (this.child === child) {
        this.child = undefined;
        child.kill('SIGKILL');
      }
      if (retry && !this.closed) this.dispatch(id, msg, false);
      else this.settle(id)?.reject(internal(`cannot reach the process spawner to run ${p.what}: ${err.message}`));
    });
  }

  /** Removes a pending request (and lets the spawner be idle again); undefined if it was settled already. */
  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    clearTimeout(p.timer);
    this.pending.delete(id);
    if (this.pending.size === 0 && this.child) this.setRef(this.child, false);
    return p;
  }

  /** Fails the requests in flight (those sent to `child` only, if given). */
  private failAll(err: Error | ((what: string) => Error), child?: ChildProcess): void {
    for (const [id, p] of [...this.pending]) {
      if (child && p.child !== child) continue;
      this.settle(id);
      p.reject(typeof err === 'function' ? err(p.what) : err);
    }
  }

  /** Only a spawner with requests in flight keeps the daemon alive. */
  private setRef(child: ChildProcess, on: boolean): void {
    if (child === this.child) this.busy = on;
    const channel = child.channel as { ref(): void; unref(): void } | null | undefined;
    if (on) {
      child.ref();
      channel?.ref();
    } else {
      child.unref();
      channel?.unref();
    }
  }

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    const child = fork(spawnerEntry(), [], {
      // its own process group (see waitGroup); it still dies with us: it exits when the IPC channel closes
      detached: true,
      // a small heap: it only shuffles a few strings per request
      execArgv: ['--max-old-space-size=32'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    this.child = child;
    this.setRef(child, false);
    child.on('message', (m: SpawnReply) => {
      if (this.pending.get(m.id)?.child === child) this.settle(m.id)?.resolve(m);
    });
    child.on('error', (e) => this.log?.warn({ err: e }, 'process spawner error'));
    child.once('exit', () => {
      if (this.child === child) this.child = undefined; // the next request starts a new one
    });
    // 'close' comes after 'exit' and after every message the spawner got out before it died
    child.once('close', async (code, signal) => {
      if (this.child === child) this.child = undefined;
      const inFlight = [...this.pending.values()].filter((p) => p.child === child).length;
      if (!inFlight) return;
      const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
      this.log?.warn({ pid: child.pid, code, signal, inFlight }, 'process spawner died; it is started again on the next request');
      // commands it had started carry on, orphaned, in its process group: let them finish first,
      // so that the caller's clean-up does not race with a mount or a runc still at work
      if (child.pid) await waitGroup(child.pid, 30_000);
      this.failAll((what) => internal(`the process spawner (pid ${child.pid}) ${how} while running ${what}`), child);
    });
    this.log?.debug({ pid: child.pid }, 'process spawner started');
    return child;
  }
}

/** Waits until no process is left in process group `pgid`, SIGKILLing the group after timeoutMs. */
async function waitGroup(pgid: number, timeoutMs: number): Promise<void> {
  const alive = () => {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + timeoutMs;
  for (let delay = 2; alive(); delay = Math.min(delay * 2, 50)) {
    if (Date.now() > deadline) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
      return;
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

let entry: string | undefined;

/**
 * The file to fork: spawner.js next to this file when running compiled (dist/), else spawner.ts
 * transpiled on its own (it imports only node builtins) into a cached file, for runs from the
 * sources (vitest), where plain node cannot load .ts.
 */
export function spawnerEntry(): string {
  if (entry) return entry;
  const js = path.join(__dirname, 'spawner.js');
  if (existsSync(js)) return (entry = js);
  const tsPath = path.join(__dirname, 'spawner.ts');
  const src = readFileSync(tsPath, 'utf8');
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a devDependency, only needed when running from the sources
  const ts = require('typescript') as typeof import('typescript');
  const out = ts.transpileModule(src, {
    fileName: tsPath,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  }).outputText;
  const hash = createHash('sha256').update(out).digest('hex').slice(0, 16);
  // Cached inside the project's node_modules, not the machine's /tmp, so test runs leave nothing behind.
  const cacheDir = path.join(path.dirname(require.resolve('typescript/package.json')), '..', '.cache', 'shoal');
  mkdirSync(cacheDir, { recursive: true });
  const file = path.join(cacheDir, `spawner-${hash}.js`);
  if (!existsSync(file)) {
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, out, { mode: 0o644 });
    renameSync(tmp, file);
  }
  return (entry = file);
}

/** The last line of a helper's stderr, trimmed: usually the one that says what went wrong. */
export function lastLine(s: string): string {
  const lines = s.trim().split('\n');
  return lines[lines.length - 1]?.trim() ?? '';
}
