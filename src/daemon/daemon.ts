import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import type { ControlHandlers } from '../gen/shoal/v1/Control';
import type { NodeDescription__Output } from '../gen/shoal/v1/NodeDescription';
import type { DispatcherHandlers } from '../gen/shoal/v1/Dispatcher';
import type { Node__Output } from '../gen/shoal/v1/Node';
import type { Cluster__Output } from '../gen/shoal/v1/Cluster';
import { failedPrecondition, type ShoalError, toServiceError } from '../common/errors';
import { unary } from '../common/grpc-handlers';
import type { Logger } from '../common/logger';
import { shoalProto } from '../common/proto';
import { newId, now } from '../common/tasks';
import { ControlApi, type ClusterHandlers } from '../manager/control-api';
import { registryPinner } from '../manager/pin-image';
import { Dispatcher } from '../manager/dispatcher/dispatcher';
import { EtcdSupervisor } from '../manager/etcd/supervisor';
import { Leadership } from '../manager/leader';
import { Store } from '../manager/store/store';
import { Agent } from '../worker/agent';
import { Executor } from '../worker/executor';
import { ImageStore } from '../images/store';
import { imagesHandlers } from '../worker/images-api';
import { Registries } from '../images/registry/registries';
import { Runtime } from '../worker/runtime/runtime';
import { type DaemonConfig, paths } from './config';
import { type Identity, readIdentity, writeIdentity } from './identity';

import { VERSION } from '../common/version';
const IMAGE_GC_PERIOD_MS = 5 * 60_000;

interface ManagerParts {
  etcdSupervisor: EtcdSupervisor;
  etcd: Etcd3;
  dispatcher: Dispatcher;
  leadership: Leadership;
  control: ControlApi;
}

/**
 * shoald: one per node. Always serves the API socket and runs the worker side; once the node is
 * part of a cluster (after `shoal init`, or on restart) it also runs its etcd member and the
 * manager side. Stopping it stops etcd but never the containers, which conmon keeps alive.
 */
export class Daemon {
  private readonly server = new grpc.Server();
  private identity: Identity;
  private manager: ManagerParts | undefined;
  private agent: Agent | undefined;
  private readonly images: ImageStore;
  private readonly registries: Registries;
  private readonly runtime: Runtime;
  private readonly executor: Executor;
  private initializing: Promise<void> | undefined;
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
      log: log.child({ component: 'runtime' }),
    });
    this.executor = new Executor({
      runtime: this.runtime,
      images: this.images,
      registry: (auth) => this.registries.clientFor({ auth }),
      logDir: p.logs,
      concurrency: config.startConcurrency,
      report: (id, status) => this.agent?.report(id, status),
      log: log.child({ component: 'executor' }),
    });
  }

  async start(): Promise<void> {
    const p = paths(this.config);
    fs.mkdirSync(this.config.dataDir, { recursive: true, mode: 0o700 });
    claimPidFile(p.pidFile);
    writeIdentity(p.identity, this.identity);
    await this.executor.init();
    if (this.config.imageGc?.maxBytes !== undefined || this.config.imageGc?.highPercent !== undefined) {
      this.images.onCommit = () => this.collectImages();
      this.gcTimer = setInterval(() => this.collectImages(), IMAGE_GC_PERIOD_MS);
      this.gcTimer.unref();
      this.collectImages();
    }
    this.server.addService(shoalProto().Control.service, this.controlHandlers());
    this.server.addService(shoalProto().Images.service, imagesHandlers(this.images, this.executor, this.registries));
    this.server.addService(shoalProto().Dispatcher.service, this.dispatcherHandlers());
    await this.listen();
    // gRPC services cannot be added after bind, so Dispatcher calls are routed to the manager once there is one.
    if (this.identity.cluster_id) await this.startManager();
    this.log.info({ nodeId: this.identity.node_id, socket: this.config.socket, clusterId: this.identity.cluster_id || null }, 'shoald started');
  }

  async stop(): Promise<void> {
    clearInterval(this.gcTimer);
    this.agent?.stop();
    this.executor.close();
    this.runtime.close();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    await this.stopManager();
    fs.rmSync(this.config.socket, { force: true });
    fs.rmSync(paths(this.config).pidFile, { force: true });
    this.log.info('shoald stopped; containers keep running');
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

  private async listen(): Promise<void> {
    fs.mkdirSync(path.dirname(this.config.socket), { recursive: true, mode: 0o755 });
    // The pid file proved no other shoald owns this data dir, so a leftover socket is stale.
    fs.rmSync(this.config.socket, { force: true });
    await new Promise<void>((resolve, reject) =>
      this.server.bindAsync(`unix://${this.config.socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    // Root-only, like docker.sock: whoever can talk to it can run anything on this node.
    fs.chmodSync(this.config.socket, 0o600);
  }

  private controlHandlers(): ControlHandlers {
    const cluster = (name: keyof ClusterHandlers) =>
      ((call: never, cb: never) => {
        if (!this.manager) return refuse(call, cb, failedPrecondition('this node is not part of a cluster yet: run `shoal init` first'));
        return (this.manager.control.handlers()[name] as (c: never, cb: never) => void)(call, cb);
      }) as never;
    return {
      Init: unary(() => this.init()),
      Info: unary(async () => ({
        node_id: this.identity.node_id,
        cluster_id: this.identity.cluster_id,
        manager: !!this.manager,
        leader: this.manager?.leadership.isLeader ?? false,
        version: VERSION,
      })),
      CreateService: cluster('CreateService'),
      GetService: cluster('GetService'),
      ListServices: cluster('ListServices'),
      UpdateService: cluster('UpdateService'),
      RemoveService: cluster('RemoveService'),
      ServiceLogs: cluster('ServiceLogs'),
      ListTasks: cluster('ListTasks'),
      ListNodes: cluster('ListNodes'),
    };
  }

  private dispatcherHandlers(): DispatcherHandlers {
    const route = (name: keyof DispatcherHandlers) =>
      ((call: never, cb: never) => {
        if (!this.manager) return refuse(call, cb, failedPrecondition('this node is not a manager'));
        return (this.manager.dispatcher.handlers()[name] as (c: never, cb: never) => void)(call, cb);
      }) as never;
    return { Session: route('Session'), Heartbeat: route('Heartbeat'), UpdateTaskStatus: route('UpdateTaskStatus'), PublishLogs: route('PublishLogs') };
  }

  /** Makes this node the first manager of a new cluster (and a worker, as in Swarm). */
  private async init(): Promise<{ node_id: string; cluster_id: string }> {
    if (this.identity.cluster_id || this.initializing) throw failedPrecondition('this node is already part of a cluster');
    const clusterId = newId();
    const ts = now();
    const cluster: Cluster__Output = { id: clusterId, version: 0, created_at: ts };
    const node: Node__Output = {
      id: this.identity.node_id,
      version: 0,
      spec: { role: 'manager', availability: 'active', labels: {} },
      description: describeNode(),
      status: { state: 'NODE_UNKNOWN', message: '', addr: '', heartbeat_at: '' },
      manager_status: { leader: false, reachability: 'reachable', addr: this.config.socket },
      created_at: ts,
    };
    this.initializing = this.startManager(async (store) => {
      await store.commit([
        { type: 'create', kind: 'cluster', obj: cluster },
        { type: 'create', kind: 'nodes', obj: node },
      ]);
      this.identity = { node_id: this.identity.node_id, cluster_id: clusterId };
      writeIdentity(paths(this.config).identity, this.identity);
    });
    try {
      await this.initializing;
    } finally {
      this.initializing = undefined;
    }
    return { node_id: this.identity.node_id, cluster_id: this.identity.cluster_id };
  }

  /** Starts (or adopts) the etcd member, then the manager side and this node's agent. */
  private async startManager(bootstrap?: (store: Store) => Promise<void>): Promise<void> {
    const etcdSupervisor = new EtcdSupervisor({
      dataDir: paths(this.config).etcd,
      name: this.identity.node_id,
      clientPort: this.config.etcdClientPort,
      peerPort: this.config.etcdPeerPort,
      log: this.log.child({ component: 'etcd' }),
    });
    await etcdSupervisor.start();
    const etcd = new Etcd3({ hosts: etcdSupervisor.clientUrl });
    const store = new Store(etcd);
    try {
      await bootstrap?.(store);
    } catch (err) {
      etcd.close();
      await etcdSupervisor.stop();
      throw err;
    }
    const log = this.log.child({ component: 'manager' });
    const dispatcher = new Dispatcher(store, log.child({ component: 'dispatcher' }));
    await dispatcher.start();
    const leadership = new Leadership(etcd, store, this.identity.node_id, log);
    await leadership.start();
    this.manager = { etcdSupervisor, etcd, dispatcher, leadership, control: new ControlApi(store, etcd, dispatcher, registryPinner((auth) => this.registries.clientFor({ auth }), this.log.child({ component: 'control' }))) };
    this.agent = new Agent({
      dispatcher: this.config.socket,
      nodeId: this.identity.node_id,
      description: describeNode(),
      executor: this.executor,
      log: this.log.child({ component: 'agent' }),
    });
    this.agent.start();
  }

  private async stopManager(): Promise<void> {
    const m = this.manager;
    if (!m) return;
    this.manager = undefined;
    await m.leadership.stop();
    await m.dispatcher.stop();
    m.etcd.close();
    await m.etcdSupervisor.stop();
  }
}

/** Fails a call of any kind (unary callback or stream) with a ShoalError. */
function refuse(call: unknown, cb: unknown, err: ShoalError): void {
  if (typeof cb === 'function') return (cb as (e: unknown) => void)(toServiceError(err));
  (call as grpc.ServerWritableStream<unknown, unknown>).destroy(Object.assign(new Error(err.message), toServiceError(err)));
}

function describeNode(): NodeDescription__Output {
  const arch = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[os.arch()] ?? os.arch();
  return {
    hostname: os.hostname(),
    platform: { os: 'linux', architecture: arch },
    resources: { nano_cpus: os.cpus().length * 1e9, memory_bytes: os.totalmem(), pids: 0 },
    engine_version: VERSION,
  };
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
