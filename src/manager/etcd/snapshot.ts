import { execFile } from 'node:child_process';
import { hostname } from 'node:os';
import type { Etcd3 } from 'etcd3';
import { failedPrecondition, internal } from '../../common/errors';
import { writeSnapshotFile } from '../../common/snapshot-file';

/** What a snapshot holds, as `etcdctl snapshot status` reads it from the file. */
export interface SnapshotStatus {
  revision: number;
  keys: number;
}

const ETCDCTL_TIMEOUT_MS = 120_000;

/**
 * Streams a snapshot of the member's whole keyspace into `file` (etcd's format, its SHA-256 last)
 * and checks it. The Snapshot call of etcd 3.4 carries no revision; snapshotStatus reads it.
 */
export async function saveSnapshot(etcd: Etcd3, file: string): Promise<void> {
  // etcd3 types it as bare events; it is grpc-js's readable stream, which pauses.
  const stream = (await etcd.maintenance.snapshot()) as Awaited<ReturnType<Etcd3['maintenance']['snapshot']>> & { pause(): void; resume(): void };
  await writeSnapshotFile(stream, (m: { blob: Buffer }) => m.blob, file, 'the snapshot etcd sent');
}

/** Reads a snapshot file's revision and key count with etcdctl. */
export async function snapshotStatus(file: string): Promise<SnapshotStatus> {
  return parseSnapshotStatus(await etcdctl(['snapshot', 'status', file, '-w', 'json']));
}

/** `etcdctl snapshot status -w json`: {"hash":…,"revision":11,"totalKey":14,"totalSize":20480}. */
export function parseSnapshotStatus(json: string): SnapshotStatus {
  let s: { revision?: unknown; totalKey?: unknown };
  try {
    s = JSON.parse(json);
  } catch {
    throw internal(`etcdctl snapshot status printed something that is not JSON: ${json.slice(0, 200)}`);
  }
  if (typeof s.revision !== 'number' || typeof s.totalKey !== 'number') throw internal(`etcdctl snapshot status printed no revision and key count: ${json.slice(0, 200)}`);
  return { revision: s.revision, keys: s.totalKey };
}

/**
 * Makes a new data dir for a one-member cluster from a snapshot: `etcdctl snapshot restore` keeps
 * every key and revision, drops the old membership and names `name` at `peerUrl` the only member.
 * etcd derives the member and cluster ids from the peer URLs and the cluster token alone, so a
 * restore at an old manager's address with etcd's default token would get that manager's ids, and
 * the old cluster's members, should any come back, would be taken for peers (seen here: they
 * left the restored member unable to serve a linearizable read). A token of its own makes it a
 * cluster they are refused by.
 */
export async function restoreSnapshot(file: string, opts: { name: string; peerUrl: string; dataDir: string; clusterToken: string }): Promise<void> {
  await etcdctl([
    'snapshot', 'restore', file,
    `--name=${opts.name}`,
    `--initial-cluster=${opts.name}=${opts.peerUrl}`,
    `--initial-cluster-token=${opts.clusterToken}`,
    `--initial-advertise-peer-urls=${opts.peerUrl}`,
    `--data-dir=${opts.dataDir}`,
  ]);
}

function etcdctl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('etcdctl', args, { env: { ...process.env, ETCDCTL_API: '3' }, timeout: ETCDCTL_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(failedPrecondition(`etcdctl is not installed on node ${hostname()}: install Debian's etcd-client package (deploy/setup-host.sh does)`));
      }
      const why = stderr.split('\n').find((l) => l.startsWith('Error:')) ?? (stderr.trim().split('\n').pop() || err.message);
      reject(internal(`etcdctl ${args.slice(0, 2).join(' ')} failed: ${why.replace(/^Error: /, '')}`));
    });
  });
}
