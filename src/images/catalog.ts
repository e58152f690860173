import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { internal } from '../common/errors';

export interface CatalogLayer {
  digest: string;
  mediaType: string;
  diffId: string;
}

export interface CatalogImage {
  /** The manifest's digest. */
  digest: string;
  tags: string[];
  /** `name@digest` of what a pull named: the index for a multi-platform image. Absent for loads. */
  repoDigests?: string[];
  sizeBytes: number;
  createdAt: string;
  /** When a container last used it (or it arrived): the order automatic collection deletes in. */
  lastUsedAt?: string;
  /** Copied from the manifest and config, so lookups and garbage collection read no blobs. */
  layers: CatalogLayer[];
}

/** The store's only mutable file: image id → what is known about it. Blobs never change. */
export interface Catalog {
  images: Record<string, CatalogImage>;
}

const FILE = 'images.json';

export async function readCatalog(root: string): Promise<Catalog> {
  let text: string;
  try {
    text = await readFile(join(root, FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { images: {} };
    throw err;
  }
  try {
    return JSON.parse(text) as Catalog;
  } catch {
    throw internal(`image catalog ${join(root, FILE)} is corrupt`);
  }
}

/** Replaces the catalog atomically: readers and crashes see the old file or the new one, never half. */
export async function writeCatalog(root: string, catalog: Catalog): Promise<void> {
  const tmp = join(root, 'tmp', `${FILE}.${process.pid}.${Date.now()}`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify(catalog, null, 1));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(root, FILE));
}
