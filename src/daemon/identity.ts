import * as fs from 'node:fs';

/** What makes this node itself across restarts: its id, and the cluster it belongs to once initialised. */
export interface Identity {
  node_id: string;
  cluster_id: string;
}

export function readIdentity(file: string): Identity | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Identity;
  } catch {
    return null;
  }
}

export function writeIdentity(file: string, id: Identity): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(id, null, 2));
  fs.renameSync(tmp, file);
}
