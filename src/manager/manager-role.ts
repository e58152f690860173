import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { DispatcherHandlers } from '../gen/shoal/v1/Dispatcher';
import type { NodeCAHandlers } from '../gen/shoal/v1/NodeCA';
import type { Logger } from '../common/logger';
import { BackupApi, type BackupHandlers } from './backup-api';
import { ClusterApi, type ClusterApiHandlers } from './cluster-api';
import { ControlApi, type ClusterHandlers } from './control-api';
import { Dispatcher } from './dispatcher/dispatcher';
import { NodeLogs, type PeerCredentials } from './dispatcher/node-logs';
import { SessionRegistry } from './dispatcher/sessions';
import { connectEtcd } from './etcd/client';
import { EtcdSupervisor, type EtcdTlsFiles } from './etcd/supervisor';
import { promoteWhenCaughtUp } from './etcd/membership';
import { Leadership } from './leader';
import { NetworkApi, type NetworkHandlers } from './network-api';
import { NodeApi, type NodeHandlers } from './node-api';
import { NodeCaApi } from './node-ca-api';
import type { ImagePinner } from './pin-image';
import { StoreCache } from './store/cache';
import { Store } from './store/store';

export interface ManagerRoleOptions {
  /** The etcd member's directory (data, pid file, log, TLS files). */
  etcdDir: string;
  nodeId: string;
  clusterId: string;
  /** Where other nodes reach this manager: host and host:port of its cluster endpoint. */
  advertiseHost: string;
  clusterAddr: string;
  etcdClientPort: number;
  etcdPeerPort: number;
  /** Joining: the member list to start with, the other members' client URLs and the id to promote. */
  join?: { initialCluster: string; clientUrls: string[]; memberId: string };
  pinImage?: ImagePinner;
  /** TLS with this node's certificate, for calls to the other managers. */
  peerCredentials: PeerCredentials;
  log: Logger;
}

/** The control API a manager serves; the daemon answers Init, Info, Join and Leave itself. */
export type ManagerControlHandlers = ClusterHandlers & NodeHandlers & ClusterApiHandlers & NetworkHandlers & BackupHandlers;

/** Where a manager's etcd member keeps the certificate the etcd CA gave it. */
export function etcdTlsFiles(etcdDir: string): EtcdTlsFiles {
  const dir = path.join(etcdDir, 'tls');
  return { caFile: path.join(dir, 'ca.crt'), certFile: path.join(dir, 'member.crt'), keyFile: path.join(dir, 'member.key') };
}

export function writeEtcdTls(etcdDir: string, files: { caPem: string; certPem: string; keyPem: string }): void {
  const tls = etcdTlsFiles(etcdDir);
  fs.mkdirSync(path.dirname(tls.caFile), { recursive: true, mode: 0o700 });
  fs.writeFileSync(tls.caFile, files.caPem);
  fs.writeFileSync(tls.certFile, files.certPem);
  fs.writeFileSync(tls.keyFile, files.keyPem, { mode: 0o600 });
}

/**
 * Everything a manager node runs on top of its worker side: its etcd member, the store, the
 * dispatcher for worker sessions, the control API, the node CA, and the campaign for leadership
 * (the leader runs the control loops).
 */
export class ManagerRole {
  private constructor(
    private readonly supervisor: EtcdSupervisor,
    readonly etcd: Etcd3,
    readonly store: Store,
    private readonly cache: StoreCache,
    private readonly sessions: SessionRegistry,
    private readonly dispatcher: Dispatcher,
    readonly leadership: Leadership,
    private readonly control: ControlApi,
    private readonly nodes: NodeApi,
    private readonly cluster: ClusterApi,
    private readonly nodeCa: NodeCaApi,
    private readonly networks: NetworkApi,
    private readonly backup: BackupApi,
  ) {}

  /**
   * Starts (or adopts) the etcd member, then the manager's services. `bootstrap` runs against the
   * store before anything serves (init writes the cluster's first objects there).
   */
  static async start(opts: ManagerRoleOptions, bootstrap?: (store: Store, etcd: Etcd3) => Promise<void>): Promise<ManagerRole> {
    const tls = etcdTlsFiles(opts.etcdDir);
    const supervisor = new EtcdSupervisor({
      dataDir: opts.etcdDir,
      name: opts.nodeId,
      advertiseHost: opts.advertiseHost,
      clientPort: opts.etcdClientPort,
      peerPort: opts.etcdPeerPort,
      tls,
      initialCluster: opts.join?.initialCluster,
      log: opts.log.child({ component: 'etcd' }),
    });
    await supervisor.start();
    if (opts.join) {
      // A learner answers no client calls, so it is promoted through the members already serving.
      const others = connectEtcd(opts.join.clientUrls, tls);
      try {
        await promoteWhenCaughtUp(others, opts.join.memberId);
      } finally {
        others.close();
      }
    }
    // The local member first; the others keep this manager's store working while it restarts.
    const etcd = connectEtcd([supervisor.clientUrl, ...(opts.join?.clientUrls ?? [])], tls);
    const store = new Store(etcd);
    try {
      await bootstrap?.(store, etcd);
    } catch (err) {
      etcd.close();
      await supervisor.stop();
      throw err;
    }
    const log = opts.log.child({ component: 'manager' });
    const sessions = new SessionRegistry(etcd, opts.nodeId, log.child({ component: 'sessions' }));
    await sessions.start();
    // One watch-fed view of the store for the dispatcher and the leader loops: no list per event.
    const cache = new StoreCache(store, log.child({ component: 'cache' }));
    await cache.start();
    const dispatcher = new Dispatcher(store, cache, sessions, opts.clusterId, log.child({ component: 'dispatcher' }));
    await dispatcher.start();
    const leadership = new Leadership(etcd, store, opts.nodeId, log, cache);
    await leadership.start();
    return new ManagerRole(
      supervisor,
      etcd,
      store,
      cache,
      sessions,
      dispatcher,
      leadership,
      new ControlApi(store, cache, new NodeLogs(dispatcher, sessions, cache, opts.peerCredentials), opts.pinImage),
      new NodeApi(store, etcd, log.child({ component: 'nodes' })),
      new ClusterApi(store, opts.clusterId, opts.clusterAddr),
      new NodeCaApi(store, cache, etcd, opts.clusterId, log.child({ component: 'ca' })),
      new NetworkApi(store),
      new BackupApi(etcd, opts.etcdDir),
    );
  }

  controlHandlers(): ManagerControlHandlers {
    // a store call failing because etcd is down or its disk full says so (explain)
    return this.supervisor.explaining({
      ...this.control.handlers(),
      ...this.nodes.handlers(),
      ...this.cluster.handlers(),
      ...this.networks.handlers(),
      ...this.backup.handlers(),
    });
  }

  dispatcherHandlers(): DispatcherHandlers {
    return this.dispatcher.handlers();
  }

  nodeCaHandlers(): NodeCAHandlers {
    return this.nodeCa.handlers();
  }

  /** Stops serving and campaigning and stops the etcd member; `wipe` also deletes its data (demote, leave). */
  async stop(wipe = false): Promise<void> {
    await this.leadership.stop();
    await this.dispatcher.stop();
    await this.cache.stop();
    await this.sessions.stop();
    this.etcd.close();
    await this.supervisor.stop();
    if (wipe) fs.rmSync(this.supervisor.dataDir, { recursive: true, force: true });
  }
}
