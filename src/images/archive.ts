import { createHash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { posix } from 'node:path';
import { Parser, type ReadEntry } from 'tar';
import { invalidArgument, ShoalError } from '../common/errors';

/** One regular file of an image archive, saved to disk and hashed as it streamed past. */
export interface ArchiveFile {
  path: string;
  digest: string;
  size: number;
}

/** Member path (normalized, e.g. `blobs/sha256/ab…`) → the saved file. */
export type ArchiveFiles = Map<string, ArchiveFile>;

const LINK_HOPS = 16;

/**
 * Streams a tar (optionally gzipped) into `dir`, hashing each file once on the way.
 * Files are saved under sequence numbers, never under member names, so no member
 * can write outside `dir`. Symlinks and hard links between members (docker save uses
 * them for repeated layers) resolve to the file they name.
 */
export async function readArchive(input: NodeJS.ReadableStream, dir: string): Promise<ArchiveFiles> {
  // Both maps follow member order, so a later member of the same name replaces an earlier one.
  const saved = new Map<string, Promise<ArchiveFile>>();
  const links = new Map<string, string>();
  const saves: Promise<ArchiveFile>[] = [];
  const open = new Set<WriteStream>();

  await new Promise<void>((resolve, reject) => {
    let failed = false;
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      // Drained rather than left paused, so a sender waiting on backpressure is not left hanging.
      input.unpipe();
      input.resume();
      for (const out of open) out.destroy();
      reject(archiveError(err));
    };
    const parser = new Parser({
      strict: true,
      onReadEntry: (entry: ReadEntry) => {
        if (failed) return entry.resume();
        let name: string;
        try {
          name = memberName(entry.path);
        } catch (err) {
          entry.resume();
          return fail(err);
        }
        if (entry.type === 'File' || entry.type === 'OldFile' || entry.type === 'ContiguousFile') {
          const save = saveEntry(entry, posix.join(dir, String(saves.length)), open);
          save.catch(fail);
          saves.push(save);
          links.delete(name);
          saved.set(name, save);
        } else if ((entry.type === 'SymbolicLink' || entry.type === 'Link') && entry.linkpath) {
          const base = entry.type === 'SymbolicLink' ? posix.dirname(name) : '';
          links.set(name, posix.normalize(posix.join(base, entry.linkpath)));
          saved.delete(name);
          entry.resume();
        } else {
          entry.resume();
        }
      },
    });
    // Without the end-of-archive marker, a stream cut between two members would look complete.
    let sawEnd = false;
    parser.on('eof', () => (sawEnd = true));
    parser.on('error', fail);
    parser.on('end', () => {
      if (!sawEnd) return fail(invalidArgument('image archive is truncated'));
      Promise.all(saves).then(() => resolve(), fail);
    });
    input.on('error', fail);
    input.pipe(parser as unknown as NodeJS.WritableStream);
  });

  const files: ArchiveFiles = new Map();
  for (const [name, save] of saved) files.set(name, await save);
  for (const [name, target] of links) {
    const file = follow(target, files, links);
    if (file) files.set(name, file);
  }
  return files;
}

async function saveEntry(entry: ReadEntry, path: string, open: Set<WriteStream>): Promise<ArchiveFile> {
  const hash = createHash('sha256');
  // flush: these files become the store's blobs, which must survive a power cut once indexed.
  const out = createWriteStream(path, { mode: 0o600, flush: true });
  open.add(out);
  let size = 0;
  entry.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    size += chunk.length;
    if (!out.write(chunk)) {
      entry.pause();
      out.once('drain', () => entry.resume());
    }
  });
  entry.on('end', () => out.end());
  await finished(out).finally(() => open.delete(out));
  if (size !== entry.size) throw invalidArgument('image archive is truncated');
  return { path, digest: `sha256:${hash.digest('hex')}`, size };
}

function follow(target: string, files: ArchiveFiles, links: Map<string, string>): ArchiveFile | undefined {
  for (let hop = 0; hop < LINK_HOPS; hop++) {
    const file = files.get(target);
    if (file) return file;
    const next = links.get(target);
    if (next === undefined) return undefined;
    target = next;
  }
  return undefined;
}

function memberName(raw: string): string {
  const name = posix.normalize(raw.replace(/^\/+/, '')).replace(/^\.\//, '').replace(/\/$/, '');
  if (name === '..' || name.startsWith('../')) throw invalidArgument(`image archive member "${raw}" points outside the archive`);
  return name;
}

function archiveError(err: unknown): ShoalError {
  if (err instanceof ShoalError) return err;
  const e = err as { code?: string; tarCode?: string; message?: string };
  const message = e?.message ?? String(err);
  // A gzipped archive that stops early fails in zlib; a plain one in the tar parser.
  if (/truncated|unexpected end/i.test(message)) return invalidArgument('image archive is truncated');
  if (e?.tarCode === 'TAR_BAD_ARCHIVE' || e?.tarCode === 'TAR_ENTRY_INVALID' || e?.code?.startsWith('Z_')) {
    return invalidArgument(`image archive is not a valid tar: ${message.replace(/^TAR_\w+: /, '')}`);
  }
  return invalidArgument(`image archive could not be read: ${message}`);
}
