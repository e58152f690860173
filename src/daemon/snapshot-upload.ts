import * as fs from 'node:fs';
import type { ServerReadableStream } from '@grpc/grpc-js';
import type { InitResponse } from '../gen/shoal/v1/InitResponse';
import type { RestoreChunk__Output } from '../gen/shoal/v1/RestoreChunk';
import { SnapshotCheck } from '../common/snapshot-file';

/**
 * Writes the snapshot a `shoal swarm restore` streams in to `file` (root-only: it holds the
 * cluster's CA keys), checking as it goes that it is a whole etcd snapshot. Resolves to the
 * advertise address its first message names.
 */
export async function receiveSnapshot(call: ServerReadableStream<RestoreChunk__Output, InitResponse>, file: string): Promise<{ advertiseAddr: string }> {
  const out = fs.createWriteStream(file, { flags: 'wx', mode: 0o600 });
  const check = new SnapshotCheck();
  let advertiseAddr: string | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      call.on('data', (chunk: RestoreChunk__Output) => {
        advertiseAddr ??= chunk.advertise_addr;
        if (!chunk.data.length) return;
        check.update(chunk.data);
        if (!out.write(chunk.data)) {
          call.pause();
          out.once('drain', () => call.resume());
        }
      });
      call.on('error', reject);
      out.on('error', reject);
      call.on('end', () => out.end(resolve));
    });
  } finally {
    out.destroy();
  }
  check.verify('the file');
  return { advertiseAddr: advertiseAddr ?? '' };
}
