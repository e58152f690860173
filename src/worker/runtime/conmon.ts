import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import { internal } from '../../common/errors';
import { runcMessage } from './runc';

export interface ConmonArgs {
  conmonPath: string;
  runcPath: string;
  /** Global runc args (--root=..., --log-format=json), passed with --runtime-arg. */
  runtimeArgs: string[];
  id: string;
  bundle: string;
  exitDir: string;
  socketDir: string;
  logPath: string;
  logSizeMax?: number;
  conmonPidFile: string;
  containerPidFile: string;
  timeoutMs?: number;
}

/** conmon's command line (API version 1, as Podman uses it). */
export function conmonArgv(a: ConmonArgs): string[] {
  const argv = [
    '--api-version', '1',
    '-c', a.id,
    '-u', a.id,
    '-n', a.id,
    '-r', a.runcPath,
    '-b', a.bundle,
    '-p', a.containerPidFile,
    '-P', a.conmonPidFile,
    '--exit-dir', a.exitDir,
    '--socket-dir-path', a.socketDir,
    '-l', `k8s-file:${a.logPath}`,
    '--log-level', 'error',
  ];
  if (a.logSizeMax && a.logSizeMax > 0) argv.push('--log-size-max', String(a.logSizeMax));
  for (const r of a.runtimeArgs) argv.push('--runtime-arg', r);
  return argv;
}

/**
 * Starts conmon for one container and waits until it has run `runc create`. conmon double-forks
 * into its own session, so it (and the container it holds) outlives this process. It reports on
 * the sync pipe (fd 3, named by _OCI_SYNCPIPE) one JSON line: {"data": <container pid>} or
 * {"data": -1, "message": <runc's stderr>}. Resolves to the container's host pid; rejects with
 * runc's own error sentence.
 */
export function spawnConmon(a: ConmonArgs): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(a.conmonPath, conmonArgv(a), {
      cwd: a.bundle,
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', _OCI_SYNCPIPE: '3' },
    });
    const sync = child.stdio[3] as Readable;
    const stderr = child.stderr!;
    let errText = '';
    let buf = '';
    let done = false;
    let exitCode: number | null = null;

    const finish = (err: Error | null, pid?: number) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sync.destroy();
      stderr.destroy();
      child.unref();
      if (err) reject(err);
      else resolve(pid!);
    };
    const timer = setTimeout(async () => {
      // runc create hung: kill conmon (its runc child dies with it: PDEATHSIG)
      const pid = Number(await fs.readFile(a.conmonPidFile, 'utf8').catch(() => '0'));
      if (pid > 0) process.kill(pid, 'SIGKILL');
      finish(internal(`runc create did not finish within ${Math.round((a.timeoutMs ?? 60_000) / 1000)} s`));
    }, a.timeoutMs ?? 60_000);

    child.on('error', (e) => finish(internal(`cannot run conmon: ${e.message}`)));
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
        return finish(internal(`conmon sent an unreadable message: ${buf.slice(0, nl)}`));
      }
      if (typeof msg.data === 'number' && msg.data > 0) return finish(null, msg.data);
      finish(internal(runcMessage(msg.message ?? '') || 'runc create failed without saying why'));
    });
    sync.on('error', () => undefined);
    sync.on('close', () => {
      const why = errText.trim().split('\n').pop()?.replace(/^\[conmon:\w\]: /, '');
      finish(internal(`conmon exited before creating the container${why ? `: ${why}` : exitCode ? ` (status ${exitCode})` : ''}`));
    });
  });
}
