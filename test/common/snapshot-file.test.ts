import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SnapshotCheck } from '../../src/common/snapshot-file';

/** Bytes shaped as etcd writes a snapshot: a bbolt meta page (magic at offset 16), more pages, then the SHA-256 of all that. */
function snapshot(bodyBytes = 3 * 4096): Buffer {
  const body = randomBytes(bodyBytes);
  body.writeUInt32LE(0xed0cdaed, 16);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

function checked(bytes: Buffer, chunk: number): SnapshotCheck {
  const c = new SnapshotCheck();
  for (let i = 0; i < bytes.length; i += chunk) c.update(bytes.subarray(i, i + chunk));
  return c;
}

describe('SnapshotCheck', () => {
  const good = snapshot();

  it.each([1, 5, 31, 32, 33, 4096, good.length])('accepts a whole snapshot fed in chunks of %i bytes, and counts its size', (chunk) => {
    const c = checked(good, chunk);
    expect(() => c.verify('FILE')).not.toThrow();
    expect(c.size).toBe(good.length);
  });

  it('refuses a truncated snapshot, naming what it was given', () => {
    expect(() => checked(good.subarray(0, good.length - 100), 1000).verify('backup.db')).toThrow(
      'backup.db is not a whole etcd snapshot: its SHA-256 checksum does not match (truncated or damaged)',
    );
  });

  it('refuses a snapshot with one byte changed', () => {
    const bad = Buffer.from(good);
    bad[5000] ^= 1;
    expect(() => checked(bad, 4096).verify('FILE')).toThrow(/SHA-256 checksum does not match/);
  });

  it('refuses a file that is not a bbolt database, even with a matching checksum', () => {
    const body = Buffer.from('{"not": "a snapshot"}'.repeat(10));
    const file = Buffer.concat([body, createHash('sha256').update(body).digest()]);
    expect(() => checked(file, 64).verify('notes.json')).toThrow('notes.json is not an etcd snapshot (it does not start as an etcd database; make one with `shoal swarm backup`)');
  });

  it('refuses an empty file and one shorter than a checksum', () => {
    expect(() => new SnapshotCheck().verify('empty')).toThrow(/is not an etcd snapshot/);
    expect(() => checked(good.subarray(0, 20), 3).verify('short')).toThrow(/is not a whole etcd snapshot/);
  });

  it('can be asked twice', () => {
    const c = checked(good, 100);
    c.verify('FILE');
    expect(() => c.verify('FILE')).not.toThrow();
  });
});
