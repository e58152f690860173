import { createHash, type Hash } from 'node:crypto';
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
