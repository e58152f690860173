import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ServerWritableStream } from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import type { BackupChunk } from '../gen/shoal/v1/BackupChunk';
import type { BackupRequest__Output } from '../gen/shoal/v1/BackupRequest';
import type { ControlHandlers } from '../gen/shoal/v1/Control';
import { explainNoSpace } from '../common/disk';
import { failStream } from '../common/errors';
import { newId } from '../common/tasks';
import { saveSnapshot, snapshotStatus } from './etcd/snapshot';
import { ROOT } from './store/store';

export type BackupHandlers = Pick<ControlHandlers, 'Backup'>;

const CHUNK_BYTES = 1 << 20;
const STAGED = /^backup-[a-z0-9]+\.db$/;

/**
 * `shoal swarm backup`: a snapshot of this manager's etcd member, which holds the whole cluster
 * state (a member's copy is the cluster's: writes are applied on every member in the same order).
 * It is staged in a file beside the member's data, so that its exact revision can be read from it
 * before the first byte is sent, and removed once sent.
 */
export class BackupApi {
  constructor(
    private readonly etcd: Etcd3,
    /** The member's directory, on the disk whose space the staged file takes. */
    private readonly dir: string,
  ) {
    // Staged by a shoald that died while sending them: no backup of this manager is under way yet.
    for (const f of fs.readdirSync(dir)) if (STAGED.test(f)) fs.rmSync(path.join(dir, f), { force: true });
  }

  handlers(): BackupHandlers {
    return {
      Backup: (call) => void this.backup(call).catch(async (err) => failStream(call, await explainNoSpace(err, this.dir))),
    };
  }

  /**
   * A snapshot is the local member's copy, served without a quorum: after losing most managers it
   * is what can still be saved. A linearizable read (which needs a quorum) tells whether the copy
   * is known to be current; if not, the backup goes on and says so.
   */
  private async quorumWarning(): Promise<string> {
    try {
      await this.etcd.get(`${ROOT}cluster/`).exec();
      return '';
    } catch {
      return `this manager's etcd member reaches no quorum; the snapshot is its own copy and may lack the last changes made before the quorum was lost`;
    }
  }

  private async backup(call: ServerWritableStream<BackupRequest__Output, BackupChunk>): Promise<void> {
    const file = path.join(this.dir, `backup-${newId()}.db`);
    try {
      const warning = await this.quorumWarning();
      await saveSnapshot(this.etcd, file);
      const { revision, keys } = await snapshotStatus(file);
      call.write({ revision, keys, size_bytes: fs.statSync(file).size, warning });
      for await (const data of fs.createReadStream(file, { highWaterMark: CHUNK_BYTES })) {
        if (call.cancelled) return;
        if (!call.write({ data })) await Promise.race([once(call, 'drain'), once(call, 'cancelled')]);
      }
      call.end();
    } finally {
      fs.rmSync(file, { force: true });
    }
  }
}
