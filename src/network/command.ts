import { execFile } from 'node:child_process';
import { internal } from '../common/errors';

export interface RunOptions {
  /** Written to the command's stdin (a `-batch -` or `nft -f -` script). */
  input?: string;
  /** Run inside this network namespace (a path such as /run/netns/NAME or /proc/PID/ns/net). */
  netns?: string;
}

/**
 * Runs iproute2 or nft and returns its stdout. A failure throws with the command's own words,
 * since iproute2 and nft name the failing line of a batch.
 */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const [file, argv] = opts.netns ? ['nsenter', [`--net=${opts.netns}`, cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const child = execFile(file, argv, { maxBuffer: 64 * 1024 * 1024, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) {
        const why = stderr.trim() || err.message;
        reject(internal(`${cmd} ${args.join(' ')} failed${opts.netns ? ` in ${opts.netns}` : ''}: ${why}`));
      } else resolve(stdout);
    });
    // A command that exits before reading its stdin says why on stderr; the EPIPE adds nothing.
    child.stdin?.on('error', () => {});
    child.stdin?.end(opts.input ?? '');
  });
}

/** Parses the output of `ip -json` or `bridge -json`, which prints nothing at all when there is nothing. */
export async function runJson<T>(cmd: string, args: string[], opts: RunOptions = {}): Promise<T[]> {
  const out = (await run(cmd, ['-json', ...args], opts)).trim();
  return out ? (JSON.parse(out) as T[]) : [];
}
