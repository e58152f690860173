import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Cluster__Output } from '../gen/shoal/v1/Cluster';
import type { Node__Output } from '../gen/shoal/v1/Node';
import { createRootCA, issueKeyPair } from '../ca/certificates';
import { invalidArgument } from '../common/errors';
import { newId } from '../common/tasks';
import type { Logger } from '../common/logger';
import { type ClusterSecrets, loadSecrets } from './cluster-secrets';
import { connectEtcd } from './etcd/client';
import { restoreSnapshot } from './etcd/snapshot';
import { EtcdSupervisor } from './etcd/supervisor';
import { etcdTlsFiles, writeEtcdTls } from './manager-role';
import { type Op, Store } from './store/store';

export interface RestoreOptions {
  /** A checked snapshot file (shoal swarm backup). */
  snapshot: string;
  /** The manager's etcd directory; must not hold a member yet. */
  etcdDir: string;
  nodeId: string;
  advertiseHost: string;
  clientPort: number;
  peerPort: number;
  log: Logger;
}

/** What a node needs from a restored cluster state to take it up as its manager. */
export interface RestoredCluster {
  clusterId: string;
  secrets: ClusterSecrets;
}

/**
 * Turns a snapshot into this node's etcd member, the only one of a cluster that holds every key
 * and revision of the snapshot, and reads the cluster's id and CAs from it. The member's TLS
 * certificate has to come from the cluster's etcd CA, which is in the snapshot; so the member is
 * started once with a throwaway CA to read it, and stopped. The caller then writes the real
 * certificates and starts the manager on this data.
 */
export async function restoreClusterState(opts: RestoreOptions): Promise<RestoredCluster> {
  const tls = etcdTlsFiles(opts.etcdDir);
  const supervisor = new EtcdSupervisor({
    dataDir: opts.etcdDir,
    name: opts.nodeId,
    advertiseHost: opts.advertiseHost,
    clientPort: opts.clientPort,
    peerPort: opts.peerPort,
    tls,
    log: opts.log.child({ component: 'etcd' }),
  });
  fs.mkdirSync(opts.etcdDir, { recursive: true, mode: 0o700 });
  await restoreSnapshot(opts.snapshot, {
    name: opts.nodeId,
    peerUrl: supervisor.peerUrl,
    dataDir: path.join(opts.etcdDir, 'member-data'),
    clusterToken: `shoal-restore-${newId()}`,
  });
  const ca = await createRootCA('shoal restore (throwaway)', 1);
  const subject = { nodeId: opts.nodeId, role: 'manager' as const, clusterId: 'restore' };
  writeEtcdTls(opts.etcdDir, { caPem: ca.certPem, ...(await issueKeyPair(ca, subject, { ips: [...new Set([opts.advertiseHost, '127.0.0.1'])], server: true, client: true })) });
  await supervisor.start();
  const etcd = connectEtcd(supervisor.clientUrl, tls);
  try {
    const store = new Store(etcd);
    const clusters = await store.list<Cluster__Output>('cluster');
    if (clusters.length !== 1) throw invalidArgument('the snapshot is an etcd snapshot but holds no shoal cluster state');
    return { clusterId: clusters[0].id, secrets: await loadSecrets(store) };
  } finally {
    etcd.close();
    await supervisor.stop();
  }
}

/**
 * The node writes that make a restored cluster this node's: the managers the snapshot names are
 * removed (their etcd members are not in the new one-member cluster; a removed node that comes
 * back is told so and forgets the cluster, and can join again), and this node comes in as the only
 * manager. Workers stay: those that can reach this node take their place again.
 */
export function restoredNodesPlan(nodes: Node__Output[], self: Node__Output): Op[] {
  const old = nodes.find((n) => n.id === self.id);
  return [
    ...nodes.filter((n) => n.spec?.role === 'manager' && n.id !== self.id).map((n): Op => ({ type: 'delete', kind: 'nodes', id: n.id, version: n.version })),
    old ? { type: 'update', kind: 'nodes', obj: { ...self, version: old.version } } : { type: 'create', kind: 'nodes', obj: self },
  ];
}
