import { spawn } from 'node:child_process';
import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { internal, invalidArgument, ShoalError } from '../common/errors';

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

/**
 * Unpacks a layer tar into `dir` (which must exist and be empty) as overlayfs expects it.
 * GNU tar keeps owners, modes, links and device nodes, and already refuses members that
 * would land outside `dir` (`..` names, writes through symlinks), failing with status 2.
 */
export async function unpackLayer(blobPath: string, gzip: boolean, dir: string, what: string): Promise<void> {
  const args = ['-x', '-f', blobPath, '-C', dir, '--numeric-owner', '--same-owner', '-p'];
  // File capabilities (ping's cap_net_raw) live in xattrs; other namespaces may not be settable here.
  args.push('--xattrs', '--xattrs-include=security.capability', '--xattrs-include=user.*');
  if (gzip) args.push('-z');
  try {
    await run('tar', args);
  } catch (err) {
    throw err instanceof ShoalError ? err : invalidArgument(`layer ${what} could not be unpacked: ${(err as Error).message}`);
  }
  try {
    await convertWhiteouts(dir);
  } catch (err) {
    throw err instanceof ShoalError ? err : internal(`layer ${what}: converting whiteouts failed: ${(err as Error).message}`);
  }
}

/**
 * OCI marks deletions with files; overlayfs with a 0/0 character device (a deleted entry)
 * and the `trusted.overlay.opaque` xattr (a directory that hides everything below it).
 */
async function convertWhiteouts(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.name === OPAQUE) {
      await rm(path);
      await run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', dir]);
    } else if (entry.name.startsWith(WHITEOUT)) {
      await rm(path, { recursive: true });
      const hidden = join(dir, entry.name.slice(WHITEOUT.length));
      // A whiteout only hides lower layers; an entry of the same name in this layer stays.
      if (hidden !== dir && !(await exists(hidden))) await run('mknod', [hidden, 'c', '0', '0']);
    } else if (entry.isDirectory()) {
      await convertWhiteouts(path);
    }
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

const PACKAGE: Record<string, string> = { setfattr: 'attr', mknod: 'coreutils', tar: 'tar' };

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString();
    });
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'ENOENT' ? internal(`${cmd} is not installed (Debian package ${PACKAGE[cmd]})`) : err),
    );
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(stderr.trim().split('\n').filter((l) => !/Removing leading/.test(l)).join('; ') || `${cmd} exited with ${code}`));
    });
  });
}
