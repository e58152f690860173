import type { ServerReadableStream } from '@grpc/grpc-js';
import type { InitResponse } from '../gen/shoal/v1/InitResponse';
import type { RestoreChunk__Output } from '../gen/shoal/v1/RestoreChunk';
import { writeSnapshotFile } from '../common/snapshot-file';

/**
 * Writes the snapshot a `shoal swarm restore` streams in to `file` (root-only: it holds the
 * cluster's CA keys), checking as it goes that it is a whole etcd snapshot. Resolves to the
 * advertise address its first message names.
 */
export async function receiveSnapshot(call: ServerReadableStream<RestoreChunk__Output, InitResponse>, file: string): Promise<{ advertiseAddr: string }> {
  let advertiseAddr: string | undefined;
  await writeSnapshotFile(
    call,
    (chunk: RestoreChunk__Output) => {
      advertiseAddr ??= chunk.advertise_addr;
      return chunk.data;
    },
    file,
    'the file',
  );
  return { advertiseAddr: advertiseAddr ?? '' };
}
