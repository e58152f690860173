import { status } from '@grpc/grpc-js';
import { statfs } from 'node:fs/promises';
import { hostname } from 'node:os';
import { ShoalError } from './errors';
import { formatBytes } from './units';

/** etcd preallocates its write-ahead log in segments of this size; less free than that stops it. */
const ETCD_WAL_SEGMENT = 64 * 1024 * 1024;
/** …but on a small disk, a few percent free is not "full". */
const FULL_FRACTION = 0.05;

/** Whether an error says that a disk is full: ENOSPC from a write, or etcd's words for it. */
export function isNoSpace(err: unknown): boolean {
  if ((err as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC') return true;
  const text = err instanceof Error ? err.message : typeof err === 'string' ? err : '';
  return /no space left on device|ENOSPC/i.test(text);
}

async function space(dir: string): Promise<{ free: number; size: number } | null> {
  try {
    const s = await statfs(dir);
    return { free: s.bavail * s.bsize, size: s.blocks * s.bsize };
  } catch {
    return null;
  }
}

/** Whether the filesystem holding `dir` has too little left for etcd to write: less than a WAL segment and than 5%. */
export async function diskFull(dir: string): Promise<boolean> {
  const s = await space(dir);
  return s !== null && s.free < Math.min(ETCD_WAL_SEGMENT, s.size * FULL_FRACTION);
}

/** "the data disk of node X is full: …", with what is left and what to do about it. */
export async function diskFullError(dir: string): Promise<ShoalError> {
  const s = await space(dir);
  const left = s ? `${dir} has ${formatBytes(s.free)} free of ${formatBytes(s.size)}` : `no space left on the disk of ${dir}`;
  return new ShoalError(
    status.RESOURCE_EXHAUSTED,
    `the data disk of node ${hostname()} is full: ${left}; free space there (old files, unused images: shoal image prune -a), and shoal carries on by itself`,
  );
}

/** `err`, or the disk-full error for `dir` when that is what it was. */
export async function explainNoSpace(err: unknown, dir: string): Promise<unknown> {
  return isNoSpace(err) ? diskFullError(dir) : err;
}
