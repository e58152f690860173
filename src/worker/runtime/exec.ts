import { spawn } from 'node:child_process';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a short-lived helper (runc, mount, umount) and collects its output; never throws for a non-zero exit. */
export function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 30_000 });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString() || (signal ? `killed by ${signal}` : ''),
      }),
    );
  });
}

/** The last line of a helper's stderr, trimmed: usually the one that says what went wrong. */
export function lastLine(s: string): string {
  const lines = s.trim().split('\n');
  return lines[lines.length - 1]?.trim() ?? '';
}
