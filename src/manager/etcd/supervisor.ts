import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hostname } from 'node:os';
import type { sendUnaryData, ServiceError } from '@grpc/grpc-js';
import { connectEtcd } from './client';
import { diskFull, diskFullError, isNoSpace } from '../../common/disk';
import { type ShoalError, toServiceError, unavailable } from '../../common/errors';
import type { Logger } from '../../common/logger';

export interface EtcdOptions {
  /** The member's data lives in <dataDir>/member; pid file and log beside it. */
  dataDir: string;
  name: string;
  /** The address other managers reach this member at; it also serves clients on loopback. */
  advertiseHost: string;
  clientPort: number;
  peerPort: number;
  /** Peer and client traffic is TLS with client certificates from the cluster's etcd CA, which workers never hold. */
  tls: EtcdTlsFiles;
  /** Joining an existing cluster: every member as name=peerURL, this one included. Absent: a new one-member cluster. */
  initialCluster?: string;
  binary?: string;
  log: Logger;
  /** Waits between failed restarts: the first, doubled after each failure up to the cap. */
  backoff?: { initialMs: number; maxMs: number };
}

export interface EtcdTlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

const CHECK_INTERVAL_MS = 1000;
const BACKOFF = { initialMs: 1000, maxMs: 30_000 };
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;

/**
 * Runs this manager's etcd member as a detached process (so a crash of shoald does not take the
 * cluster's state down with it), adopts a member that is still running from an earlier shoald,
 * restarts it whenever it dies, however often that fails (waiting longer after each failure, up
 * to a cap, and logging each), and stops it when the daemon stops.
 */
export class EtcdSupervisor {
  private pid = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private restarting: Promise<void> | undefined;
  /** Restarts failed in a row, the last one's error, and when to try again. */
  private failures = 0;
  private lastFailure: Error | undefined;
  private retryAt = 0;

  constructor(private readonly opts: EtcdOptions) {}

  get dataDir(): string {
    return this.opts.dataDir;
  }

  get clientUrl(): string {
    return `https://127.0.0.1:${this.opts.clientPort}`;
  }

  /** Where other managers reach this member's client API. */
  get advertisedClientUrl(): string {
    return `https://${urlHost(this.opts.advertiseHost)}:${this.opts.clientPort}`;
  }

  get peerUrl(): string {
    return `https://${urlHost(this.opts.advertiseHost)}:${this.opts.peerPort}`;
  }

  private get pidFile(): string {
    return path.join(this.opts.dataDir, 'etcd.pid');
  }

  /** Starts or adopts the member and resolves once it answers requests. */
  async start(): Promise<void> {
    fs.mkdirSync(this.opts.dataDir, { recursive: true, mode: 0o700 });
    const adopted = this.adoptablePid();
    try {
      if (adopted) {
        this.pid = adopted;
        this.opts.log.info({ pid: adopted }, 'adopted running etcd member');
      } else {
        this.spawn();
      }
      await this.waitHealthy();
    } catch (err) {
      throw await this.startFailure(err);
    }
    this.stopping = false;
    this.timer = setInterval(() => this.check(), Math.min(CHECK_INTERVAL_MS, this.backoff.initialMs));
    this.timer.unref();
  }

  /** The same gRPC handlers, but a unary call's failure reaches the client as explain() puts it, when it can. */
  explaining<H extends object>(handlers: H): H {
    const out: Record<string, unknown> = {};
    for (const [name, handler] of Object.entries(handlers) as [string, (call: unknown, cb?: sendUnaryData<unknown>) => void][]) {
      out[name] = (call: unknown, cb?: sendUnaryData<unknown>) => handler(call, cb && this.explainErrors(cb));
    }
    return out as H;
  }

  private explainErrors<T>(cb: sendUnaryData<T>): sendUnaryData<T> {
    return (err, res) => {
      if (!err) return cb(null, res);
      this.explain((err as Partial<ServiceError>).details ?? '').then(
        (plain) => cb(plain ? (toServiceError(plain) as ServiceError) : err),
        () => cb(err),
      );
    };
  }

  /** Why etcd did not start: the full data disk (ENOSPC, or etcd died on it) if that is it. */
  private async startFailure(err: unknown): Promise<Error> {
    return isNoSpace(err) || (await diskFull(this.opts.dataDir)) ? diskFullError(this.opts.dataDir) : (err as Error);
  }

  private get backoff(): { initialMs: number; maxMs: number } {
    return this.opts.backoff ?? BACKOFF;
  }

  /**
   * What a client should be told when a call to the store failed with `details` (etcd unreachable
   * or not answering in time): that the data disk is full, when it is, or that etcd is down and
   * being restarted; undefined when neither explains it.
   */
  async explain(details: string): Promise<ShoalError | undefined> {
    if (!/UNAVAILABLE|no connection established|no space left|ENOSPC|deadline exceeded|did not answer in time/i.test(details)) return undefined;
    if (await diskFull(this.opts.dataDir)) return diskFullError(this.opts.dataDir);
    if (this.failures) {
      return unavailable(`the cluster store (etcd) of node ${hostname()} is down; restarting it failed ${this.failures} time(s), last: ${this.lastFailure?.message}; shoald keeps trying`);
    }
    return undefined;
  }

  /** A member started by an earlier shoald on this data dir, if it is still alive. */
  private adoptablePid(): number {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(this.pidFile, 'utf8').trim());
    } catch {
      return 0;
    }
    if (!pid || !isAlive(pid)) return 0;
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return cmdline.includes('etcd') && cmdline.includes(path.join(this.opts.dataDir, 'member-data')) ? pid : 0;
    } catch {
      return 0;
    }
  }

  private spawn(): void {
    const { dataDir, name, clientPort, peerPort, tls } = this.opts;
    const peerUrl = this.peerUrl;
    const clientUrls = [...new Set([this.clientUrl, this.advertisedClientUrl])].join(',');
    const args = [
      `--name=${name}`,
      `--data-dir=${path.join(dataDir, 'member-data')}`,
      `--listen-client-urls=${clientUrls}`,
      `--advertise-client-urls=${this.advertisedClientUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=${this.opts.initialCluster ?? `${name}=${peerUrl}`}`,
      `--initial-cluster-state=${this.opts.initialCluster ? 'existing' : 'new'}`,
      '--client-cert-auth',
      `--trusted-ca-file=${tls.caFile}`,
      `--cert-file=${tls.certFile}`,
      `--key-file=${tls.keyFile}`,
      '--peer-client-cert-auth',
      `--peer-trusted-ca-file=${tls.caFile}`,
      `--peer-cert-file=${tls.certFile}`,
      `--peer-key-file=${tls.keyFile}`,
      '--max-txn-ops=1024',
      '--log-level=warn',
      '--logger=zap',
      // A single member on local disk; snapshots every 10k writes keep the WAL replay short.
      '--snapshot-count=10000',
    ];
    const out = fs.openSync(path.join(dataDir, 'etcd.log'), 'a');
    const child = spawn(this.opts.binary ?? 'etcd', args, { detached: true, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    child.unref();
    if (!child.pid) throw unavailable('could not start etcd: is the etcd-server package installed? (run deploy/setup-host.sh)');
    this.pid = child.pid;
    try {
      fs.writeFileSync(this.pidFile, `${child.pid}\n`);
    } catch (err) {
      // a member no pid file names cannot be adopted: the next shoald would start a second one on the same data
      process.kill(child.pid, 'SIGKILL');
      throw err;
    }
    this.opts.log.info({ pid: child.pid, clientPort, peerPort }, 'started etcd member');
  }

  private async waitHealthy(): Promise<void> {
    const client = connectEtcd(this.clientUrl, this.opts.tls, { dialTimeoutMs: 1000 });
    const deadline = Date.now() + START_TIMEOUT_MS;
    try {
      for (;;) {
        try {
          // Status is one of the few calls a learner (a joining member not yet promoted) answers.
          await client.maintenance.status({});
          return;
        } catch (err) {
          if (!isAlive(this.pid)) throw unavailable(`etcd exited during start-up; see ${path.join(this.opts.dataDir, 'etcd.log')}`);
          if (Date.now() > deadline) throw unavailable(`etcd did not become healthy within ${START_TIMEOUT_MS / 1000}s: ${(err as Error).message}`);
          await sleep(100);
        }
      }
    } finally {
      client.close();
    }
  }

  private check(): void {
    if (this.stopping || this.restarting || isAlive(this.pid) || Date.now() < this.retryAt) return;
    if (!this.failures) this.opts.log.warn({ pid: this.pid }, 'etcd member died; restarting it');
    this.restarting = (async () => {
      try {
        this.spawn();
        await this.waitHealthy();
        if (this.failures) this.opts.log.info({ failures: this.failures }, `etcd member is back after ${this.failures} failed restart(s)`);
        this.failures = 0;
        this.lastFailure = undefined;
      } catch (e) {
        const err = await this.startFailure(e);
        this.failures++;
        this.lastFailure = err;
        const waitMs = Math.min(this.backoff.initialMs * 2 ** (this.failures - 1), this.backoff.maxMs);
        this.retryAt = Date.now() + waitMs;
        this.opts.log.error({ err, failures: this.failures, retryInMs: waitMs }, `restarting etcd failed (${this.failures} in a row): ${err.message}; trying again in ${waitMs / 1000} s`);
      } finally {
        this.restarting = undefined;
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    await this.restarting;
    if (!this.pid || !isAlive(this.pid)) return;
    process.kill(this.pid, 'SIGTERM');
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (isAlive(this.pid) && Date.now() < deadline) await sleep(50);
    if (isAlive(this.pid)) process.kill(this.pid, 'SIGKILL');
    fs.rmSync(this.pidFile, { force: true });
    this.opts.log.info('stopped etcd member');
  }
}

/** Client credentials for the member's TLS API: shoald uses the member's own certificate. */
const urlHost = (host: string) => (host.includes(':') ? `[${host}]` : host);

function isAlive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill(0); it is dead for our purposes.
  try {
    return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
