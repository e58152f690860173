import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { invalidArgument } from './errors';

/** etcd's snapshot stream ends with the SHA-256 of everything before it (etcdctl snapshot restore checks it). */
const HASH_BYTES = 32;
/** A snapshot is a bbolt database: its first page is a meta page, whose magic number follows the 16-byte page header. */
const BOLT_MAGIC = 0xed0cdaed;
const BOLT_MAGIC_OFFSET = 16;

/**
 * Checks an etcd snapshot as its bytes go by, without holding it: that it starts as a bbolt
 * database and that its last 32 bytes are the SHA-256 of the rest. Used by `shoal swarm backup`
 * on what it saves and by a restore on what it is given.
 */
export class SnapshotCheck {
  private readonly hash: Hash = createHash('sha256');
  /** The last bytes seen, held back from the digest: they may be the checksum. */
  private tail = Buffer.alloc(0);
  private head = Buffer.alloc(0);
  size = 0;

  update(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.head.length < BOLT_MAGIC_OFFSET + 4) this.head = Buffer.concat([this.head, chunk.subarray(0, BOLT_MAGIC_OFFSET + 4 - this.head.length)]);
    const all = chunk.length >= HASH_BYTES ? chunk : Buffer.concat([this.tail, chunk]);
    if (all === chunk) this.hash.update(this.tail);
    const cut = Math.max(0, all.length - HASH_BYTES);
    this.hash.update(all.subarray(0, cut));
    this.tail = Buffer.from(all.subarray(cut));
  }

  /** Throws a sentence naming `what` when the bytes seen are not a whole etcd snapshot. */
  verify(what: string): void {
    if (this.head.length < BOLT_MAGIC_OFFSET + 4 || this.head.readUInt32LE(BOLT_MAGIC_OFFSET) !== BOLT_MAGIC) {
      throw invalidArgument(`${what} is not an etcd snapshot (it does not start as an etcd database; make one with \`shoal swarm backup\`)`);
    }
    if (this.tail.length < HASH_BYTES || !this.hash.copy().digest().equals(this.tail)) {
      throw invalidArgument(`${what} is not a whole etcd snapshot: its SHA-256 checksum does not match (truncated or damaged)`);
    }
  }
}

/** A stream of messages that can be paused while the file catches up: grpc-js's readable calls. */
export interface PausableSource<M> {
  on(event: 'data', listener: (message: M) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  pause(): unknown;
  resume(): unknown;
}

/**
 * Writes the snapshot bytes a stream carries into a new file (root-only: a snapshot holds the
 * cluster's CA keys), pausing the stream while the disk is behind, and checks that they make a
 * whole etcd snapshot; `what` names the snapshot in the error when they do not.
 */
export async function writeSnapshotFile<M>(source: PausableSource<M>, bytesOf: (message: M) => Buffer, file: string, what: string): Promise<void> {
  const out = fs.createWriteStream(file, { flags: 'wx', mode: 0o600 });
  const check = new SnapshotCheck();
  try {
    await new Promise<void>((resolve, reject) => {
      source.on('data', (message) => {
        const bytes = bytesOf(message);
        if (!bytes.length) return;
        check.update(bytes);
        if (!out.write(bytes)) {
          source.pause();
          out.once('drain', () => source.resume());
        }
      });
      source.on('error', reject);
      out.on('error', reject);
      source.on('end', () => out.end(resolve));
    });
  } finally {
    out.destroy();
  }
  check.verify(what);
}
