/**
 * The process spawner: a small, long-lived child of shoald that runs every process the runtime
 * needs (mount, umount, conmon, runc), so that each fork() copies a ~40 MB process instead of the
 * daemon (fork cost grows with the parent's RSS; at 150 MB it was a third of a 50-container start).
 *
 * It is started with child_process.fork and talks over the IPC channel (see SpawnRequest and
 * SpawnReply). It exits as soon as that channel closes, so it dies with the daemon, even on
 * kill -9. conmon double-forks into its own session and outlives both. The spawner leads its own
 * process group, which the short-lived commands it runs share: should it die, the daemon waits
 * for that group to empty before it fails the requests, so that no orphaned mount or runc is
 * still at work when the daemon cleans up.
 *
 * This file must import only node builtins and nothing from the rest of shoal: it is run on its
 * own (dist/src/worker/runtime/spawner.js, or transpiled alone when running from the sources), and
 * keeping it small keeps every fork cheap.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';

export interface ExecRequest {
  id: number;
  kind: 'exec';
  cmd: string;
  args: string[];
  cwd?: string;
  timeoutMs: number;
  /**
   * Once the command has exited, how long to wait for its stdout and stderr to close before
   * answering with what they gave: a process it left behind may hold them open for ever.
   * Unset: until they close.
   */
  drainMs?: number;
  /** What ends it at timeoutMs; default SIGTERM. */
  killSignal?: NodeJS.Signals;
}

export interface ConmonRequest {
  id: number;
  kind: 'conmon';
  cmd: string;
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number;
  /** conmon's -P file: read to kill conmon when runc create hangs. */
  conmonPidFile: string;
}

export type SpawnRequest = ExecRequest | ConmonRequest;

export type SpawnReply =
  /** exec: the command ran (whatever its exit status). */
  | { id: number; code: number; stdout: string; stderr: string }
  /** conmon: runc create succeeded; the container's host pid. */
  | { id: number; pid: number }
  /** conmon: conmon reported that runc create failed, with runc's stderr. */
  | { id: number; runcError: string }
  /** Either: the process could not be run or did not finish (errno: e.g. ENOENT). */
  | { id: number; error: string; errno?: string };

function exec(r: ExecRequest, reply: (m: SpawnReply) => void): void {
  let child;
  try {
    child = spawn(r.cmd, r.args, { cwd: r.cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: r.timeoutMs, killSignal: r.killSignal });
  } catch (e) {
    return reply({ id: r.id, error: (e as Error).message, errno: (e as NodeJS.ErrnoException).code });
  }
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let done = false;
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.on('error', (e: NodeJS.ErrnoException) => {
    done = true;
    reply({ id: r.id, error: e.message, errno: e.code });
  });
  const finish = (code: number | null, signal: NodeJS.Signals | null) => {
    if (done) return;
    done = true;
    child.stdout.destroy();
    child.stderr.destroy();
    reply({
      id: r.id,
      code: code ?? (signal ? 128 : 1),
      stdout: Buffer.concat(out).toString(),
      stderr: Buffer.concat(err).toString() || (signal ? `killed by ${signal}` : ''),
    });
  };
  child.on('close', finish);
  if (r.drainMs !== undefined) child.on('exit', (code, signal) => setTimeout(() => finish(code, signal), r.drainMs));
}

/**
 * Starts conmon and waits until it has run `runc create`: conmon reports on the sync pipe (fd 3,
 * named by _OCI_SYNCPIPE) one JSON line, {"data": <container pid>} or {"data": -1, "message":
 * <runc's stderr>}. Then lets conmon go: it has double-forked into its own session.
 */
function conmon(r: ConmonRequest, reply: (m: SpawnReply) => void): void {
  let child;
  try {
    child = spawn(r.cmd, r.argv, { cwd: r.cwd, detached: true, stdio: ['ignore', 'ignore', 'pipe', 'pipe'], env: r.env });
  } catch (e) {
    return reply({ id: r.id, error: `cannot run conmon: ${(e as Error).message}`, errno: (e as NodeJS.ErrnoException).code });
  }
  const sync = child.stdio[3] as Readable;
  const stderr = child.stderr!;
  let errText = '';
  let buf = '';
  let done = false;
  let exitCode: number | null = null;

  const finish = (m: SpawnReply) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    sync.destroy();
    stderr.destroy();
    child.unref();
    reply(m);
  };
  const timer = setTimeout(() => {
    // runc create hung: kill conmon (its runc child dies with it: PDEATHSIG)
    let pid = 0;
    try {
      pid = Number(readFileSync(r.conmonPidFile, 'utf8'));
    } catch {
      // not written yet
    }
    try {
      if (pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    finish({ id: r.id, error: `runc create did not finish within ${Math.round(r.timeoutMs / 1000)} s` });
  }, r.timeoutMs);

  child.on('error', (e: NodeJS.ErrnoException) => finish({ id: r.id, error: `cannot run conmon: ${e.message}`, errno: e.code }));
  child.on('exit', (code) => (exitCode = code));
  stderr.on('data', (b: Buffer) => (errText += b.toString()));
  sync.on('data', (b: Buffer) => {
    buf += b.toString();
    const nl = buf.indexOf('\n');
    if (nl < 0) return;
    let msg: { data?: number; message?: string };
    try {
      msg = JSON.parse(buf.slice(0, nl));
    } catch {
      return finish({ id: r.id, error: `conmon sent an unreadable message: ${buf.slice(0, nl)}` });
    }
    if (typeof msg.data === 'number' && msg.data > 0) return finish({ id: r.id, pid: msg.data });
    finish({ id: r.id, runcError: msg.message ?? '' });
  });
  sync.on('error', () => undefined);
  sync.on('close', () => {
    const why = errText.trim().split('\n').pop()?.replace(/^\[conmon:\w\]: /, '');
    finish({ id: r.id, error: `conmon exited before creating the container${why ? `: ${why}` : exitCode ? ` (status ${exitCode})` : ''}` });
  });
}

function main(): void {
  if (!process.send) {
    process.stderr.write('shoal spawner: must be started by shoald (child_process.fork)\n');
    process.exit(2);
  }
  const reply = (m: SpawnReply) => {
    // the daemon is gone when this fails: the 'disconnect' handler ends this process
    if (process.connected) process.send!(m, undefined, undefined, () => undefined);
  };
  process.on('message', (r: SpawnRequest) => {
    try {
      if (r.kind === 'exec') exec(r, reply);
      else if (r.kind === 'conmon') conmon(r, reply);
      else reply({ id: (r as { id: number }).id, error: `unknown request ${JSON.stringify((r as { kind?: unknown }).kind)}` });
    } catch (e) {
      reply({ id: r.id, error: (e as Error).message });
    }
  });
  // dies with the daemon: the channel closes when the daemon exits, however it exits
  process.on('disconnect', () => process.exit(0));
}

if (require.main === module) main();
