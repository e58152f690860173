import { internal } from '../../common/errors';
import type { Spawner } from './exec';
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
 * Starts conmon for one container (from the process spawner) and waits until it has run `runc
 * create`. conmon double-forks into its own session, so it (and the container it holds) outlives
 * the spawner and the daemon. Resolves to the container's host pid; rejects with runc's own error
 * sentence.
 */
export async function spawnConmon(spawner: Spawner, a: ConmonArgs): Promise<number> {
  const r = await spawner.conmon({
    cmd: a.conmonPath,
    argv: conmonArgv(a),
    cwd: a.bundle,
    env: { PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', _OCI_SYNCPIPE: '3' },
    timeoutMs: a.timeoutMs ?? 60_000,
    conmonPidFile: a.conmonPidFile,
  });
  if ('pid' in r) return r.pid;
  throw internal(runcMessage(r.runcError) || 'runc create failed without saying why');
}
