import * as fs from 'node:fs';

/** What makes this node itself across restarts: its id and, once in a cluster, its place in it. */
export interface Identity {
  node_id: string;
  cluster_id: string;
  /** "manager" or "worker", as its certificate last said; '' outside a cluster. */
  role?: string;
  /** host:port other nodes reach this one at. */
  advertise_addr?: string;
  /** The managers' host:port as the dispatcher last listed them, for reconnecting after a restart. */
  managers?: string[];
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
