import * as fs from 'node:fs';
import type { NodeNetworks__Output } from '../gen/shoal/v1/NodeNetworks';
import type { Logger } from '../common/logger';
import { dnsTable, resolve, type DnsTable } from '../network/dns-records';
import { DNS_PORT, DnsServer } from '../network/dns-server';
import { openDnsListeners, RESOLVER_ADDRESS } from '../network/dns-listeners';
import { containerResolvConf, parseResolvConf, type ResolvConf } from '../network/resolv-conf';
import { Semaphore } from './semaphore';

export interface ContainerDnsOptions {
  log: Logger;
  /** The host's resolv.conf, whose nameservers get every name that is not the cluster's. */
  hostResolvConf?: string;
  /** How long each of those has to answer. */
  timeoutMs?: number;
}

/** The host's resolv.conf is read again when it is older than this, so an edit of it is followed. */
const HOST_CONF_MAX_AGE_MS = 5000;
/** Each namespace's sockets cost a short-lived node process: a restart with many containers opens them a few at a time. */
const OPEN_CONCURRENCY = 4;

/**
 * The node's resolver for its containers on overlay networks (Swarm's embedded DNS): one server
 * whose records are rebuilt from each overlay state the dispatcher sends, reached by each
 * container at 127.0.0.11 in its own namespace (network/dns-listeners.ts), which is how the server
 * knows whose networks' names to answer with.
 */
export class ContainerDns {
  private table: DnsTable = dnsTable({ attachments: [], services: [], task_names: [] });
  private readonly server: DnsServer;
  /** Per task, its listeners opening or open, as what stops them. */
  private readonly served = new Map<string, Promise<() => void>>();
  private readonly opening = new Semaphore(OPEN_CONCURRENCY);
  private host: { conf: ResolvConf; readAt: number } | undefined;

  constructor(private readonly opts: ContainerDnsOptions) {
    this.server = new DnsServer({
      resolve: (taskId, q) => resolve(this.table, taskId, q),
      upstreams: () => this.hostConf(false).nameservers.map((address) => ({ address, port: DNS_PORT })),
      timeoutMs: opts.timeoutMs,
      log: opts.log,
    });
  }

  setState(state: NodeNetworks__Output): void {
    this.table = dnsTable(state);
  }

  /** The /etc/resolv.conf of a container on networks, from the host's as it is now. */
  resolvConf(): string {
    return containerResolvConf(this.hostConf(true), RESOLVER_ADDRESS);
  }

  /** Serves the task's container in its namespace (its loopback up); a no-op while it is served. */
  async serve(taskId: string, netns: string): Promise<void> {
    let served = this.served.get(taskId);
    if (!served) {
      served = this.opening.run(() => openDnsListeners(netns)).then((l) => this.server.serve(taskId, l.udp, l.tcp));
      this.served.set(taskId, served);
      const mine = served;
      // A failed open is tried again by the next call.
      mine.catch(() => this.served.get(taskId) === mine && this.served.delete(taskId));
    }
    await served;
  }

  /** Stops serving the task's container, whose namespace its sockets would otherwise keep alive. */
  async stop(taskId: string): Promise<void> {
    const served = this.served.get(taskId);
    if (!served) return;
    this.served.delete(taskId);
    (await served.catch(() => undefined))?.();
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.served.keys()].map((id) => this.stop(id)));
  }

  private hostConf(fresh: boolean): ResolvConf {
    if (fresh || !this.host || Date.now() - this.host.readAt > HOST_CONF_MAX_AGE_MS) {
      const file = this.opts.hostResolvConf ?? '/etc/resolv.conf';
      let text = '';
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (err) {
        this.opts.log.warn({ err, file }, 'the host resolv.conf cannot be read; forwarding to 127.0.0.1');
      }
      this.host = { conf: parseResolvConf(text), readAt: Date.now() };
    }
    return this.host.conf;
  }
}
