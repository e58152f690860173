import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { ControlHandlers } from '../gen/shoal/v1/Control';
import type { DispatcherHandlers } from '../gen/shoal/v1/Dispatcher';
import type { NodeCAHandlers } from '../gen/shoal/v1/NodeCA';
import type { NodeDescription__Output } from '../gen/shoal/v1/NodeDescription';
import type { Node__Output } from '../gen/shoal/v1/Node';
import type { Cluster__Output } from '../gen/shoal/v1/Cluster';
import type { InitResponse } from '../gen/shoal/v1/InitResponse';
import type { JoinResponse } from '../gen/shoal/v1/JoinResponse';
import type { JoinRequest__Output } from '../gen/shoal/v1/JoinRequest';
import { issueKeyPair, readIdentity as readCertIdentity } from '../ca/certificates';
import { requireRole } from '../ca/authz';
import { type NodeCertificates, readNodeCertificates, removeNodeCertificates, writeNodeCertificates } from '../ca/files';
import { renewalDelayMs } from '../ca/renewal';
import { clientCredentials, listenTls, type TlsListener } from '../ca/tls';
import { checkAdvertiseAddr, defaultAdvertiseAddr, formatHostPort, parseHostPort, sourceAddressFor } from '../common/addresses';
import { explainNoSpace } from '../common/disk';
import { settleWithin } from '../common/settle';
import { failedPrecondition, ShoalError, toServiceError } from '../common/errors';
import { unary } from '../common/grpc-handlers';
import type { Logger } from '../common/logger';
import { shoalProto } from '../common/proto';
import { newId, now } from '../common/tasks';
import { VERSION } from '../common/version';
import { type ClusterSecrets, newClusterSecrets } from '../manager/cluster-secrets';
import { connectEtcd } from '../manager/etcd/client';
import { listMembers, removeMember } from '../manager/etcd/membership';
import { ManagerRole, type ManagerControlHandlers, etcdTlsFiles, writeEtcdTls } from '../manager/manager-role';
import { registryPinner } from '../manager/pin-image';
import { restoreClusterState, restoredNodesPlan } from '../manager/restore';
import type { Op, Store } from '../manager/store/store';
import { Agent } from '../worker/agent';
import { Executor } from '../worker/executor';
import { ContainerNetworks } from '../worker/container-networks';
import { ImageStore } from '../images/store';
import { imagesHandlers } from '../worker/images-api';
import { Registries } from '../images/registry/registries';
import { Runtime } from '../worker/runtime/runtime';
import { DEFAULTS, type DaemonConfig, paths } from './config';
import { type Identity, readIdentity, writeIdentity } from './identity';
import { joinCluster, joinManagers, leaveCluster, renewCertificate } from './join';
import { routed } from './routing';
import { receiveSnapshot } from './snapshot-upload';

const IMAGE_GC_PERIOD_MS = 5 * 60_000;
const RENEW_RETRY_MS = 60_000;
const SHUTDOWN_GRACE_MS = 5_000;
// setTimeout takes at most 2^31-1 ms (about 24 days); a longer wait is taken in steps.
const MAX_TIMER_MS = 2 ** 31 - 1;

type ManagerControl = ManagerControlHandlers;

/**
 * shoald: one per node. Always serves the local API socket and runs the worker side (images,
 * containers). In a cluster it also serves the TCP endpoint (TLS) and holds a dispatcher session
 * with a manager; on a manager node it runs the manager role too (etcd member, control API,
 * dispatcher, node CA, leadership). Stopping it stops etcd but never the containers.
 */
export class Daemon {
  private readonly localServer = new grpc.Server();
  private clusterServer: { server: grpc.Server; listener: TlsListener } | undefined;
  private identity: Identity;
  private certs: NodeCertificates | null = null;
  private manager: ManagerRole | undefined;
  private agent: Agent | undefined;
  private readonly images: ImageStore;
  private readonly registries: Registries;
  private readonly runtime: Runtime;
  private readonly executor: Executor;
  /** init, join, leave and role changes run one at a time. */
  private membership: Promise<unknown> = Promise.resolve();
  private roleChange: Promise<void> | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private gcTimer: NodeJS.Timeout | undefined;
  private gcRunning = false;
  private gcAgain = false;

  constructor(
    private readonly config: DaemonConfig,
    private readonly log: Logger,
  ) {
    const p = paths(config);
    this.identity = readIdentity(p.identity) ?? { node_id: newId(), cluster_id: '' };
    this.images = new ImageStore(p.images, log.child({ component: 'images' }));
    this.registries = new Registries({ insecure: config.insecureRegistries ?? [], caFile: config.registryCaFile });
    this.runtime = new Runtime({
      root: p.containers,
      runcRoot: config.runcRoot,
      cgroupParent: config.cgroupParent,
      logSizeMax: config.logMaxBytes,
      logMaxFiles: config.logMaxFiles,
      log: log.child({ component: 'runtime' }),
    });
    this.executor = new Executor({
      runtime: this.runtime,
      images: this.images,
      registry: (auth) => this.registries.clientFor({ auth }),
      logDir: p.logs,
      concurrency: config.startConcurrency,
      networks: new ContainerNetworks({ dir: p.netns, prefix: config.overlayPrefix ?? DEFAULTS.overlayPrefix, log: log.child({ component: 'networks' }) }),
      report: (id, status) => this.agent?.report(id, status),
      log: log.child({ component: 'executor' }),
    });
  }

  async start(): Promise<void> {
    const p = paths(this.config);
    fs.mkdirSync(this.config.dataDir, { recursive: true, mode: 0o700 });
    claimPidFile(p.pidFile);
    // Uploads of a restore that shoald died in the middle of.
    for (const f of fs.readdirSync(this.config.dataDir)) if (/^restore-[a-z0-9]+\.db$/.test(f)) fs.rmSync(path.join(this.config.dataDir, f), { force: true });
    writeIdentity(p.identity, this.identity);
    await this.executor.init();
    if (this.config.imageGc?.maxBytes !== undefined || this.config.imageGc?.highPercent !== undefined) {
      this.images.onCommit = () => this.collectImages();
      this.gcTimer = setInterval(() => this.collectImages(), IMAGE_GC_PERIOD_MS);
      this.gcTimer.unref();
      this.collectImages();
    }
    const proto = shoalProto();
    this.localServer.addService(proto.Control.service, this.localControlHandlers());
    this.localServer.addService(proto.Images.service, imagesHandlers(this.images, this.executor, this.registries, this.config.imageGc));
    await this.listenLocal();
    if (this.identity.cluster_id) await this.rejoin();
    this.log.info(
      { nodeId: this.identity.node_id, socket: this.config.socket, clusterId: this.identity.cluster_id || null, role: this.identity.role || null },
      'shoald started',
    );
  }

  async stop(): Promise<void> {
    clearInterval(this.gcTimer);
    clearTimeout(this.renewTimer);
    await this.roleChange?.catch(() => undefined);
    this.agent?.stop();
    this.executor.close();
    this.runtime.close();
    await shutdown(this.localServer);
    await this.stopClusterServer();
    await this.manager?.stop();
    this.manager = undefined;
    fs.rmSync(this.config.socket, { force: true });
    fs.rmSync(paths(this.config).pidFile, { force: true });
    this.log.info('shoald stopped; containers keep running');
  }

  /** A restarted daemon takes up the place in the cluster its files describe. */
  private async rejoin(): Promise<void> {
    this.certs = readNodeCertificates(this.config.dataDir);
    if (!this.certs) {
      this.log.error('this node belongs to a cluster but its certificates are missing; run `shoal leave --force` and join again');
      return;
    }
    await this.startClusterServer(this.certs);
    if (this.identity.role === 'manager') await this.startManager();
    this.startAgent();
  }

  /** Automatic image collection, after each new image and periodically; one run at a time. */
  private collectImages(): void {
    if (this.gcRunning) return void (this.gcAgain = true);
    this.gcRunning = true;
    void (async () => {
      do {
        this.gcAgain = false;
        try {
          if (!this.executor.imagesSettled()) continue;
          const wanted = await this.images.idsOf(this.executor.wantedImages());
          await this.images.collect(this.config.imageGc!, (id) => this.executor.imageInUse(id) || wanted.has(id));
        } catch (err) {
          this.log.warn({ err }, 'automatic image collection failed');
        }
      } while (this.gcAgain);
      this.gcRunning = false;
    })();
  }

  private async listenLocal(): Promise<void> {
    fs.mkdirSync(path.dirname(this.config.socket), { recursive: true, mode: 0o755 });
    // The pid file proved no other shoald owns this data dir, so a leftover socket is stale.
    fs.rmSync(this.config.socket, { force: true });
    await bind(this.localServer, `unix://${this.config.socket}`, grpc.ServerCredentials.createInsecure());
    // Root-only, like docker.sock: whoever can talk to it can run anything on this node.
    fs.chmodSync(this.config.socket, 0o600);
  }

  /** The cluster's TCP endpoint: every connection TLS, every caller identified by its certificate. */
  private async startClusterServer(certs: NodeCertificates): Promise<void> {
    const proto = shoalProto();
    const listen = parseHostPort(this.config.listenAddr, '--listen-addr');
    const server = new grpc.Server();
    const notManager = failedPrecondition('this node is not a manager; send this to a manager');
    server.addService(proto.NodeCA.service, routed<NodeCAHandlers>(proto.NodeCA.service, () => this.manager?.nodeCaHandlers() ?? notManager));
    server.addService(proto.Dispatcher.service, routed<DispatcherHandlers>(proto.Dispatcher.service, () => this.manager?.dispatcherHandlers() ?? notManager));
    server.addService(proto.Control.service, this.remoteControlHandlers());
    const log = this.log.child({ component: 'tls' });
    const listener = await listenTls(server, listen.host, listen.port, certs, {
      onRefused: (remote, reason) => log.warn({ remote, reason }, 'refused a connection'),
    }).catch((err: Error) => {
      server.forceShutdown();
      throw failedPrecondition(`${err.message} (--listen-addr)`);
    });
    this.clusterServer = { server, listener };
  }

  private async stopClusterServer(): Promise<void> {
    const s = this.clusterServer;
    this.clusterServer = undefined;
    if (!s) return;
    await shutdown(s.server);
    await s.listener.close();
  }

  /** The local socket is root-only: its callers act as the node's administrator. */
  private localControlHandlers(): ControlHandlers {
    const local = this.nodeLocalHandlers();
    const cluster = routed<ManagerControl>(shoalProto().Control.service, () => this.managerControl());
    return { ...cluster, ...local };
  }

  /**
   * Remote callers need a manager's or an admin client's certificate; a worker's certificate is
   * refused with a sentence. Init, join and leave act on the node they run on, so only locally.
   */
  private remoteControlHandlers(): ControlHandlers {
    const local = this.nodeLocalHandlers();
    const onlyLocal = failedPrecondition('init, join, leave and restore act on the node they run on: run them there, without -H');
    return routed<ControlHandlers>(shoalProto().Control.service, (call) => {
      try {
        requireRole(call as Parameters<typeof requireRole>[0], ['manager', 'admin'], 'the control API', this.identity.cluster_id);
      } catch (err) {
        return err as ShoalError;
      }
      const method = methodOf(call);
      if (method === 'Init' || method === 'Join' || method === 'Leave' || method === 'Restore') return onlyLocal;
      if (method === 'Info') return local as unknown as ControlHandlers;
      return this.managerControl() as ControlHandlers | ShoalError;
    });
  }

  private managerControl(): ManagerControl | ShoalError {
    if (this.manager) return this.manager.controlHandlers();
    if (!this.identity.cluster_id) return failedPrecondition('this node is not part of a cluster yet: run `shoal init`, or `shoal join` an existing one');
    return failedPrecondition('this node is not a manager; run it on a manager or use -H');
  }

  private nodeLocalHandlers(): Pick<ControlHandlers, 'Init' | 'Info' | 'Join' | 'Leave' | 'Restore'> {
    return {
      Init: unary((req) => this.serialized(() => this.init(req.advertise_addr))),
      Restore: (call, cb) => {
        const file = path.join(this.config.dataDir, `restore-${newId()}.db`);
        const restore = async () => {
          // Refused before the upload, and again once it is in: a join may have come in between.
          this.checkNotInCluster('restore a cluster here');
          const { advertiseAddr } = await receiveSnapshot(call, file);
          return this.serialized(() => this.restore(advertiseAddr, file));
        };
        restore()
          .finally(() => fs.rmSync(file, { force: true }))
          .then(
            (res) => cb(null, res),
            async (err) => cb(toServiceError(await explainNoSpace(err, this.config.dataDir))),
          );
      },
      Join: unary((req) => this.serialized(() => this.join(req))),
      Leave: unary((req) => this.serialized(() => this.leave(req.force))),
      Info: unary(async () => ({
        node_id: this.identity.node_id,
        cluster_id: this.identity.cluster_id,
        manager: !!this.manager,
        leader: this.manager?.leadership.isLeader ?? false,
        version: VERSION,
        role: this.identity.role ?? '',
        advertise_addr: this.identity.advertise_addr ?? '',
        managers: this.identity.managers ?? [],
        hostname: this.hostname,
      })),
    };
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.membership.then(fn, fn);
    this.membership = run.catch(() => undefined);
    return run;
  }

  private get hostname(): string {
    return this.config.hostname || os.hostname();
  }

  private async clusterAddr(advertise: string, remote?: string): Promise<{ host: string; addr: string }> {
    const listen = parseHostPort(this.config.listenAddr, '--listen-addr');
    let host: string;
    if (advertise) {
      host = parseHostPort(advertise, '--advertise-addr', listen.port).host;
      checkAdvertiseAddr(host);
    } else if (remote && listen.host !== '0.0.0.0' && listen.host !== '::') {
      host = listen.host;
    } else {
      host = remote ? await sourceAddressFor(remote) : await defaultAdvertiseAddr(listen.host);
    }
    return { host, addr: formatHostPort({ host, port: listen.port }) };
  }

  /** Makes this node the first manager of a new cluster (and a worker, as in Swarm). */
  private async init(advertise: string): Promise<InitResponse> {
    this.checkNotInCluster('start a new one');
    const { host, addr } = await this.clusterAddr(advertise);
    const clusterId = newId();
    const secrets = await newClusterSecrets(clusterId);
    fs.rmSync(paths(this.config).etcd, { recursive: true, force: true });
    const res = await this.becomeFirstManager({ host, addr, clusterId, secrets }, async (self) => [
      { type: 'create', kind: 'cluster', obj: { id: clusterId, version: 0, created_at: self.created_at } satisfies Cluster__Output },
      { type: 'create', kind: 'nodes', obj: self },
      { type: 'create', kind: 'secrets', obj: secrets },
    ]);
    this.log.info({ clusterId, addr }, 'initialised a new cluster');
    return res;
  }

  /**
   * Makes this node the one manager of the cluster a snapshot holds (shoal swarm restore): its
   * etcd member is made from the snapshot, the old managers are removed, and the services, tasks,
   * networks, workers and join tokens are the snapshot's.
   */
  private async restore(advertise: string, snapshot: string): Promise<InitResponse> {
    this.checkNotInCluster('restore a cluster here');
    const { host, addr } = await this.clusterAddr(advertise);
    const etcdDir = paths(this.config).etcd;
    fs.rmSync(etcdDir, { recursive: true, force: true });
    let restored;
    try {
      restored = await restoreClusterState({
        snapshot,
        etcdDir,
        nodeId: this.identity.node_id,
        advertiseHost: host,
        clientPort: this.config.etcdClientPort,
        peerPort: this.config.etcdPeerPort,
        log: this.log,
      });
    } catch (err) {
      fs.rmSync(etcdDir, { recursive: true, force: true });
      throw err;
    }
    const res = await this.becomeFirstManager({ host, addr, ...restored }, async (self, store) => restoredNodesPlan(await store.list<Node__Output>('nodes'), self));
    this.log.info({ clusterId: restored.clusterId, addr }, 'restored the cluster from a snapshot; this node is its only manager');
    return res;
  }

  private checkNotInCluster(toDo: string): void {
    if (this.identity.cluster_id) throw failedPrecondition(`this node is already part of a cluster; run \`shoal leave --force\` first to ${toDo}`);
  }

  /**
   * Starts this node as the only manager of a cluster whose CAs are `secrets`: its certificates,
   * its etcd member (on whatever data the etcd dir holds), then the writes `plan` makes from the
   * node object that stands for it, before anything serves. On failure nothing of it stays.
   */
  private async becomeFirstManager(
    c: { host: string; addr: string; clusterId: string; secrets: ClusterSecrets },
    plan: (self: Node__Output, store: Store) => Promise<Op[]>,
  ): Promise<InitResponse> {
    const { host, addr, clusterId, secrets } = c;
    const nodeId = this.identity.node_id;
    const subject = { nodeId, role: 'manager' as const, clusterId };
    const [nodeCert, etcdCert] = await Promise.all([
      issueKeyPair(secrets.root_ca, subject),
      issueKeyPair(secrets.etcd_ca, subject, { ips: [...new Set([host, '127.0.0.1'])], server: true, client: true }),
    ]);
    const certs = { caPem: secrets.root_ca.certPem, ...nodeCert };
    const etcdDir = paths(this.config).etcd;
    writeEtcdTls(etcdDir, { caPem: secrets.etcd_ca.certPem, ...etcdCert });
    await this.startClusterServer(certs);
    try {
      this.manager = await ManagerRole.start(this.managerOptions(nodeId, clusterId, host, addr), async (store, etcd) => {
        const [member] = await listMembers(etcd);
        const self: Node__Output = {
          id: nodeId,
          version: 0,
          spec: { role: 'manager', availability: 'active', labels: {} },
          description: this.describeNode(),
          status: { state: 'NODE_UNKNOWN', message: '', addr: host, heartbeat_at: '' },
          manager_status: { leader: false, reachability: 'reachable', addr, etcd_member_id: member.ID },
          created_at: now(),
        };
        await store.commit(await plan(self, store));
      });
    } catch (err) {
      await this.stopClusterServer();
      fs.rmSync(etcdDir, { recursive: true, force: true });
      throw err;
    }
    this.enterCluster({ node_id: nodeId, cluster_id: clusterId, role: 'manager', advertise_addr: addr, managers: [addr] }, certs);
    return { node_id: nodeId, cluster_id: clusterId, worker_join_command: `shoal join --token ${secrets.worker_token} ${addr}` };
  }

  /** Joins an existing cluster with a token: as a worker, or as a manager with its own etcd member. */
  private async join(req: JoinRequest__Output): Promise<JoinResponse> {
    if (this.identity.cluster_id) throw failedPrecondition('this node is already part of a cluster; run `shoal leave` first');
    const remote = parseHostPort(req.remote_addr, 'manager address');
    const { host, addr } = await this.clusterAddr(req.advertise_addr, remote.host);
    const joined = await joinCluster({ token: req.token, remote: formatHostPort(remote), advertise: addr, description: this.describeNode() });
    writeNodeCertificates(this.config.dataDir, joined.certs);
    await this.startClusterServer(joined.certs);
    const identity = { node_id: joined.nodeId, cluster_id: joined.clusterId, role: joined.role, advertise_addr: addr, managers: joined.managers };
    this.identity = identity;
    this.certs = joined.certs;
    if (joined.role === 'manager') {
      try {
        await this.becomeManager(host, addr);
      } catch (err) {
        await this.stopClusterServer();
        removeNodeCertificates(this.config.dataDir);
        this.identity = { node_id: this.identity.node_id, cluster_id: '' };
        this.certs = null;
        await leaveCluster(joined.managers, joined.certs, true).catch((e) => this.log.warn({ err: e }, 'could not withdraw the failed join'));
        throw err;
      }
    }
    this.enterCluster(identity, joined.certs);
    this.log.info({ clusterId: joined.clusterId, nodeId: joined.nodeId, role: joined.role, addr }, 'joined the cluster');
    return { node_id: joined.nodeId, cluster_id: joined.clusterId, role: joined.role };
  }

  private enterCluster(identity: Identity, certs: NodeCertificates): void {
    this.identity = identity;
    this.certs = certs;
    writeNodeCertificates(this.config.dataDir, certs);
    writeIdentity(paths(this.config).identity, identity);
    this.startAgent();
  }

  /**
   * Adds this node's etcd member to the cluster as a learner, starts it on a fresh data dir, and
   * promotes it once it has caught up; on any failure the member is removed again.
   */
  private async becomeManager(host: string, addr: string): Promise<void> {
    const etcdDir = paths(this.config).etcd;
    fs.rmSync(etcdDir, { recursive: true, force: true });
    const urlHost = host.includes(':') ? `[${host}]` : host;
    const peerUrl = `https://${urlHost}:${this.config.etcdPeerPort}`;
    const mj = await joinManagers(this.identity.managers ?? [], this.certs!, {
      peerUrl,
      clientUrl: `https://${urlHost}:${this.config.etcdClientPort}`,
      clusterAddr: addr,
    });
    writeEtcdTls(etcdDir, mj.etcdTls);
    try {
      this.manager = await ManagerRole.start({
        ...this.managerOptions(this.identity.node_id, this.identity.cluster_id, host, addr),
        join: { initialCluster: mj.initialCluster, clientUrls: mj.clientUrls, memberId: mj.memberId },
      });
    } catch (err) {
      const others = connectEtcd(mj.clientUrls, etcdTlsFiles(etcdDir));
      await removeMember(others, mj.memberId).catch((e) => this.log.error({ err: e }, 'removing the failed etcd member failed'));
      others.close();
      fs.rmSync(etcdDir, { recursive: true, force: true });
      throw err;
    }
  }

  private managerOptions(nodeId: string, clusterId: string, host: string, addr: string) {
    return {
      etcdDir: paths(this.config).etcd,
      nodeId,
      clusterId,
      advertiseHost: host,
      clusterAddr: addr,
      etcdClientPort: this.config.etcdClientPort,
      etcdPeerPort: this.config.etcdPeerPort,
      pinImage: registryPinner((auth) => this.registries.clientFor({ auth }), this.log.child({ component: 'control' })),
      peerCredentials: () => clientCredentials(this.certs!),
      log: this.log,
    };
  }

  private async startManager(): Promise<void> {
    const { host } = parseHostPort(this.identity.advertise_addr ?? '', 'advertise address');
    this.manager = await ManagerRole.start(this.managerOptions(this.identity.node_id, this.identity.cluster_id, host, this.identity.advertise_addr!));
  }

  /** The agent talks to the managers over TLS with this node's certificate; on a manager, to itself first. */
  private startAgent(): void {
    const own = this.identity.role === 'manager' ? [this.identity.advertise_addr!] : [];
    const managers = [...new Set([...own, ...(this.identity.managers ?? [])])];
    this.agent = new Agent({
      managers,
      credentials: () => clientCredentials(this.certs!),
      description: this.describeNode(),
      executor: this.executor,
      onManagers: (list) => {
        this.identity = { ...this.identity, managers: list };
        writeIdentity(paths(this.config).identity, this.identity);
      },
      onDesiredRole: (role) => this.changeRole(role),
      onRemoved: () => void this.serialized(() => this.forgetCluster('this node was removed from the cluster (node rm)')),
      log: this.log.child({ component: 'agent' }),
    });
    this.agent.start();
    this.scheduleRenewal();
  }

  /** Renews the node certificate at a random 50–80% of its life, and retries until it works. */
  private scheduleRenewal(delayMs?: number): void {
    clearTimeout(this.renewTimer);
    if (!this.certs) return;
    const { notBefore, notAfter } = readCertIdentity(this.certs.certPem);
    const delay = delayMs ?? renewalDelayMs(notBefore, notAfter);
    const renewAt = Date.now() + delay;
    const wait = () => {
      const left = renewAt - Date.now();
      if (left > MAX_TIMER_MS) {
        this.renewTimer = setTimeout(wait, MAX_TIMER_MS);
      } else {
        this.renewTimer = setTimeout(() => void this.renew().catch(() => this.scheduleRenewal(RENEW_RETRY_MS)), Math.max(0, left));
      }
      this.renewTimer.unref();
    };
    wait();
  }

  private async renew(): Promise<string> {
    const renewed = await renewCertificate(this.managersToAsk(), this.certs!);
    this.certs = renewed.certs;
    writeNodeCertificates(this.config.dataDir, renewed.certs);
    this.clusterServer?.listener.update(renewed.certs);
    this.identity = { ...this.identity, role: renewed.role };
    writeIdentity(paths(this.config).identity, this.identity);
    this.log.info({ role: renewed.role, notAfter: readCertIdentity(renewed.certs.certPem).notAfter }, 'renewed the node certificate');
    this.scheduleRenewal();
    return renewed.role;
  }

  private managersToAsk(): string[] {
    return [...new Set([...(this.agent?.manager ? [this.agent.manager] : []), ...(this.identity.managers ?? [])])];
  }

  /**
   * The cluster wants this node in another role (promote/demote): a new certificate with that role
   * first, then the manager side started (its etcd member joins) or stopped (its data wiped).
   */
  private changeRole(role: string): void {
    if (this.roleChange || !this.certs) return;
    const certRole = readCertIdentity(this.certs.certPem).role;
    if (certRole === role && (role === 'manager') === !!this.manager) return;
    this.roleChange = this.serialized(async () => {
      try {
        const granted = certRole === role ? role : await this.renew();
        if (granted === 'manager' && !this.manager) {
          const { host } = parseHostPort(this.identity.advertise_addr!, 'advertise address');
          await this.becomeManager(host, this.identity.advertise_addr!);
          this.log.info('promoted: this node is now a manager');
        } else if (granted === 'worker' && this.manager) {
          const m = this.manager;
          this.manager = undefined;
          await m.stop(true);
          this.log.info('demoted: this node is now a worker only');
        }
      } catch (err) {
        this.log.error({ err }, `changing this node's role to ${role} failed; will retry`);
      }
    }).finally(() => {
      this.roleChange = undefined;
    });
  }

  /** Leaves the cluster: tells the managers, stops the cluster side, removes this node's containers. */
  private async leave(force: boolean): Promise<object> {
    if (!this.identity.cluster_id) throw failedPrecondition('this node is not part of a cluster');
    if (this.manager && !force) {
      throw failedPrecondition('this node is a manager: demote it first (shoal node demote), or leave anyway with --force');
    }
    try {
      await leaveCluster(this.managersToAsk(), this.certs!);
    } catch (err) {
      if (!force) throw err;
      this.log.warn({ err }, 'could not tell the managers this node leaves; leaving anyway (--force)');
    }
    await this.forgetCluster('left the cluster');
    return {};
  }

  private async forgetCluster(why: string): Promise<void> {
    clearTimeout(this.renewTimer);
    this.agent?.stop();
    this.agent = undefined;
    const m = this.manager;
    this.manager = undefined;
    await m?.stop(true);
    await this.stopClusterServer();
    this.executor.setAssignments([]);
    removeNodeCertificates(this.config.dataDir);
    this.certs = null;
    this.identity = { node_id: newId(), cluster_id: '' };
    writeIdentity(paths(this.config).identity, this.identity);
    this.log.warn(`${why}; this node's containers are being removed`);
  }

  private describeNode(): NodeDescription__Output {
    const arch = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[os.arch()] ?? os.arch();
    return {
      hostname: this.hostname,
      platform: { os: 'linux', architecture: arch },
      resources: { nano_cpus: os.cpus().length * 1e9, memory_bytes: os.totalmem(), pids: 0 },
      engine_version: VERSION,
    };
  }
}

/**
 * Lets the calls in flight finish, for a moment, then cuts what is left: streams that never end
 * by themselves (the workers' dispatcher sessions, which the manager side ends only after this,
 * and followed logs) would otherwise keep a stopping daemon waiting for good.
 */
async function shutdown(server: grpc.Server): Promise<void> {
  await settleWithin(new Promise<void>((resolve) => server.tryShutdown(() => resolve())), SHUTDOWN_GRACE_MS);
  server.forceShutdown();
}

function bind(server: grpc.Server, target: string, credentials: grpc.ServerCredentials): Promise<void> {
  return new Promise((resolve, reject) => server.bindAsync(target, credentials, (err) => (err ? reject(err) : resolve())));
}

/** The method name of a server call ("/shoal.v1.Control/Info" → "Info"). */
function methodOf(call: unknown): string {
  const p = (call as { getPath?: () => string }).getPath?.() ?? '';
  return p.slice(p.lastIndexOf('/') + 1);
}

/** One shoald per data dir: refuses to start beside a live one, takes over a dead one's file. */
function claimPidFile(file: string): void {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    if (pid && pid !== process.pid && isShoald(pid)) {
      throw failedPrecondition(`another shoald (pid ${pid}) is already running with this data directory`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  fs.writeFileSync(file, `${process.pid}\n`);
}

function isShoald(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('shoald');
  } catch {
    return false;
  }
}

