import * as fs from 'node:fs';
import * as path from 'node:path';

/** Fills the filesystem holding `dir` to its last byte by writing the file `name` until ENOSPC. */
export function fillDisk(dir: string, name: string): void {
  const fd = fs.openSync(path.join(dir, name), 'a');
  const chunk = Buffer.alloc(1024 * 1024);
  try {
    for (let size = chunk.length; size >= 1; ) {
      try {
        fs.writeSync(fd, chunk, 0, size);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
        size = Math.floor(size / 2);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}
