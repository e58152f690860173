import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import type { BackupChunk__Output } from '../../gen/shoal/v1/BackupChunk';
import type { InitResponse__Output } from '../../gen/shoal/v1/InitResponse';
import { failedPrecondition, internal, invalidArgument } from '../../common/errors';
import { SnapshotCheck } from '../../common/snapshot-file';
import { formatBytes } from '../../common/units';
import type { Client } from '../client';

type Connect = () => Client;

const CHUNK = 1 << 20;
const RESTORE_TIMEOUT_MS = 10 * 60_000;

/** Why a file cannot be opened, in words: the errno codes people meet here. */
function why(err: unknown, file: string): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') return `${path.dirname(path.resolve(file))} does not exist`;
  if (e.code === 'EACCES' || e.code === 'EPERM') return 'permission denied';
  if (e.code === 'EROFS') return 'the filesystem is read-only';
  if (e.code === 'ENOSPC') return 'the disk is full';
  if (e.code === 'EISDIR') return 'it is a directory; name a file';
  return e.message;
}

/**
 * `shoal swarm backup FILE`: the manager's etcd snapshot, written to a hidden file beside FILE,
 * checked (size and SHA-256), synced, and renamed over FILE, so FILE is either the old file or a
 * whole new snapshot, never a part of one.
 */
export function backupCommand(connect: Connect): Command {
  return new Command('backup')
    .description('save a snapshot of the cluster state (etcd) from a manager to FILE')
    .argument('<file>', 'where to write the snapshot (replaced atomically)')
    .action(async (file: string) => {
      const target = path.resolve(file);
      if (fs.statSync(target, { throwIfNoEntry: false })?.isDirectory()) throw invalidArgument(`cannot write ${file}: it is a directory; name a file`);
      const staged = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.part`);
      let fd: number;
      try {
        fd = fs.openSync(staged, 'wx', 0o600);
      } catch (err) {
        throw failedPrecondition(`cannot write ${file}: ${why(err, file)}`);
      }
      try {
        const client = connect();
        const check = new SnapshotCheck();
        let meta: BackupChunk__Output | undefined;
        await new Promise<void>((resolve, reject) => {
          const call = client.control.Backup({});
          call.on('data', (m: BackupChunk__Output) => {
            if (!meta) return void (meta = m);
            check.update(m.data);
            try {
              fs.writeSync(fd, m.data);
            } catch (err) {
              call.cancel();
              reject(failedPrecondition(`cannot write ${file}: ${why(err, file)}`));
            }
          });
          call.on('error', (err) => reject(client.explain(err)));
          call.on('end', () => resolve());
        });
        if (!meta) throw internal('the manager ended the backup without sending a snapshot');
        if (meta.warning) process.stderr.write(`warning: ${meta.warning}\n`);
        if (check.size !== Number(meta.size_bytes)) throw internal(`the snapshot arrived incomplete: ${check.size} of ${meta.size_bytes} bytes`);
        check.verify('the snapshot the manager sent');
        fs.fsyncSync(fd);
        fs.closeSync(fd);
        fd = -1;
        fs.renameSync(staged, target);
        syncDir(path.dirname(target));
        process.stdout.write(
          `Saved the cluster state to ${file}: ${formatBytes(check.size)}, etcd revision ${meta.revision}, ${meta.keys} keys.\n` +
            'It holds the cluster CA keys and the join tokens: keep it as safe as a manager.\n',
        );
      } finally {
        if (fd >= 0) fs.closeSync(fd);
        fs.rmSync(staged, { force: true });
      }
    });
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** `shoal swarm restore FILE`: this node becomes the only manager of the cluster a snapshot holds. */
export function restoreCommand(connect: Connect): Command {
  return new Command('restore')
    .description('make this node, in no cluster yet, the only manager of the cluster a snapshot (shoal swarm backup) holds')
    .argument('<file>', 'the snapshot')
    .option('--advertise-addr <ip>', 'the address other nodes reach this one at (default: the listen address, or the default route’s); the old manager’s lets its workers come back by themselves')
    .action(async (file: string, opts) => {
      let input: fs.ReadStream;
      try {
        fs.accessSync(file, fs.constants.R_OK);
        input = fs.createReadStream(file, { highWaterMark: CHUNK });
      } catch (err) {
        throw invalidArgument(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : why(err, file)}`);
      }
      const client = connect();
      // Checked here too, so that a wrong file is named as the user named it.
      const check = new SnapshotCheck();
      const res = await new Promise<InitResponse__Output>((resolve, reject) => {
        const call = client.control.Restore({ deadline: Date.now() + RESTORE_TIMEOUT_MS }, (err, r) => (err ? reject(client.explain(err)) : resolve(r!)));
        call.write({ advertise_addr: opts.advertiseAddr ?? '' });
        input.on('data', (data) => {
          check.update(data as Buffer);
          if (!call.write({ data })) {
            input.pause();
            call.once('drain', () => input.resume());
          }
        });
        input.on('end', () => {
          try {
            check.verify(file);
          } catch (err) {
            call.cancel();
            return reject(err);
          }
          call.end();
        });
        input.on('error', (err) => {
          call.cancel();
          reject(invalidArgument(`cannot read ${file}: ${why(err, file)}`));
        });
      });
      process.stdout.write(
        `Cluster ${res.cluster_id} restored from ${file}: current node (${res.node_id}) is now its only manager.\n` +
          'The managers in the snapshot were removed from it; its workers come back once they reach this node.\n\n' +
          `To add a worker to this cluster, run the following command:\n\n    ${res.worker_join_command}\n\n` +
          "To add a manager to this cluster, run 'shoal join-token manager' and follow the instructions.\n",
      );
    });
}
