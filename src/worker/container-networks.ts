import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NodeNetworks__Output } from '../gen/shoal/v1/NodeNetworks';
import type { Task__Output } from '../gen/shoal/v1/Task';
import { failedPrecondition } from '../common/errors';
import { publishesPorts } from '../common/tasks';
import type { Logger } from '../common/logger';
import { run, runJson } from '../network/command';
import { applyOverlay, attachContainer, checkPrefix, macForIp, removeOverlay, vethName, type ObservedLink, type OverlayHost } from '../network/overlay';
import { applyMesh, enableForwarding, removeMesh } from '../network/mesh';
import { gatewayOf, meshState, wantedNetworks } from './node-mesh';
import { allowBridged } from '../network/forward';
import { applyVips, vipRuleset, type VipService } from '../network/vip';
import type { NetworkAttacher } from './exec/task-controller';
import type { ContainerConfig } from './runtime/types';
import { ContainerDns } from './container-dns';
import { Coalesced } from '../common/coalesced';

/** The nftables table in each container's namespace that balances the VIPs of its networks. */
const VIP_TABLE = 'shoal';
const RETRY_MS = 1000;
// Task ids as newId() makes them; nothing else in the directory is taken for a task's namespace.
const TASK_ID = /^[a-z0-9]{25}$/;

export interface ContainerNetworksOptions {
  /** Where each container's network namespace is bound, as <dir>/<task id>. */
  dir: string;
  /** Starts the names of the node's overlay devices (see overlay.ts). */
  prefix: string;
  log: Logger;
}

const bare = (address: string) => address.split('/')[0];

/**
 * The state with only the endpoints in `reachable`: the balancers are programmed apart from the
 * plumbing and may run ahead of it, and a connection sent to a task whose neighbour entry is not
 * there yet would go unanswered (EHOSTUNREACH after ARP gives up). A task leaves the balancers
 * at once; it joins them once the plumbing has reached it.
 */
function routableOnly(state: NodeNetworks__Output, reachable: ReadonlySet<string>): NodeNetworks__Output {
  const only = (ips: string[]) => ips.filter((ip) => reachable.has(ip));
  return {
    ...state,
    published: state.published.map((p) => ({ ...p, endpoints: only(p.endpoints) })),
    services: state.services.map((s) => ({ ...s, endpoints: only(s.endpoints) })),
  };
}

interface LocalContainer {
  id: string;
  netns: string;
  networks: NodeNetworks__Output['attachments'][number]['networks'];
}

/**
 * Puts containers on overlay networks: a network namespace per container, bound to a file so
 * that it outlives shoald and is found again after a restart; a veth from it into the network's
 * bridge; in it an nftables table that balances every VIP of its networks over the running
 * endpoints; and the node's resolver, which answers it the names of its networks.
 * Level-triggered from the overlay state the dispatcher sends (NodeNetworks): each change makes
 * the node carry exactly the networks its containers are on, with every remote task's neighbour
 * and forwarding entries, rewrites each container's table that changed, and gives the resolver
 * its new names. One operation at a time, since each reads what exists before it changes it.
 */
export class ContainerNetworks implements NetworkAttacher {
  private state: NodeNetworks__Output | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** The VIP ruleset last written into each namespace, so an unchanged one is not written again. */
  private readonly written = new Map<string, { ns: number; ruleset: string }>();
  private readonly balancers = new Coalesced(() => this.balance());
  /**
   * Task addresses this node can route to, as the plumbing last left it: remote tasks with their
   * neighbour and forwarding entries, local ones plugged in. The balancers send nothing elsewhere.
   */
  private reachable = new Set<string>();
  /** The state the balancers were last programmed from. */
  private programmed: NodeNetworks__Output | undefined;
  /** Checks of outOfRotation(), run after each balancer pass. */
  private readonly rotationWaiters = new Set<() => void>();
  private retry: NodeJS.Timeout | undefined;
  private balanceRetry: NodeJS.Timeout | undefined;
  /** Set by close(): nothing more is removed, whatever a task action cut short by the stop asks. */
  private closed = false;
  /** A converge is queued and not yet begun: a newer state needs no other, it reads the latest. */
  private resyncQueued = false;
  private readonly host: OverlayHost;
  private readonly dns: ContainerDns;

  constructor(private readonly opts: ContainerNetworksOptions) {
    checkPrefix(opts.prefix);
    this.host = { prefix: opts.prefix };
    this.dns = new ContainerDns({ log: opts.log });
  }

  /** The overlay state from the dispatcher; the node is converged to it. */
  setState(state: NodeNetworks__Output): void {
    this.state = state;
    this.dns.setState(state);
    this.rebalance();
    this.resync();
  }

  /** Stops converging and answering DNS; the namespaces stay, for the next shoald to serve again. */
  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
    clearTimeout(this.balanceRetry);
    void this.dns.stopAll();
  }

  /**
   * Makes the task's container a namespace on each of its networks, in the order of its spec
   * (eth0, eth1, ...; the ingress network last, when it publishes ports), served by the node's
   * resolver, its default route by eth0 to this node. Undefined for a task that joins none: its
   * container keeps a namespace of its own with loopback only, made by runc, and the host's
   * resolv.conf.
   */
  attach(task: Task__Output): Promise<Pick<ContainerConfig, 'netns' | 'ip' | 'resolvConf'> | undefined> {
    const wanted = (task.spec?.networks ?? []).map((n) => n.target);
    // A task that publishes ports joins the ingress network too, last.
    if (publishesPorts(task.endpoint)) wanted.push(this.state?.networks.find((n) => n.spec?.ingress)?.id ?? 'ingress');
    if (!wanted.length) return Promise.resolve(undefined);
    const held = this.state?.attachments.find((a) => a.id === task.id)?.networks ?? [];
    const missing = wanted.filter((id) => !held.some((a) => a.network_id === id));
    if (missing.length) {
      return Promise.reject(failedPrecondition(`task ${task.id} has no address yet on network ${missing.join(', ')}`));
    }
    return this.serial(async () => {
      const netns = this.netnsPath(task.id);
      await this.removeNetns(task.id);
      fs.mkdirSync(this.opts.dir, { recursive: true, mode: 0o700 });
      fs.writeFileSync(netns, '');
      await run('unshare', [`--net=${netns}`, 'true']);
      // Loopback at once: the resolver's sockets are bound on it while the rest is plugged in.
      await run('ip', ['link', 'set', 'lo', 'up'], { netns });
      const failures = await this.converge();
      const mine = failures.get(task.id);
      if (mine) throw mine;
      // Another container's failure is retried as any converge's is.
      if (failures.size) this.resync();
      return { netns, ip: bare(held[0].address), resolvConf: this.dns.resolvConf() };
    });
  }

  /** Removes the task's namespace (its veths go with it) and whatever the node no longer needs. */
  release(taskId: string): Promise<void> {
    if (this.closed || !fs.existsSync(this.netnsPath(taskId))) return Promise.resolve();
    // What the node no longer needs goes with the next converge, queued right behind.
    const removed = this.serial(() => this.removeNetns(taskId));
    this.resync();
    return removed;
  }

  /** Releases the namespace of every task not in `keep`: those whose container is gone for good. */
  async sweep(keep: ReadonlySet<string>): Promise<void> {
    for (const id of this.local()) if (!keep.has(id)) await this.release(id);
  }

  /** Every namespace and overlay device of this node (node teardown). */
  removeAll(): Promise<void> {
    // With no state, a balancer pass writes nothing: none under way can make the node's table again.
    this.state = undefined;
    return this.serial(async () => {
      await this.balancers.run();
      for (const id of this.local()) await this.removeNetns(id);
      await removeOverlay(this.host);
      await removeMesh(this.meshTable);
      await allowBridged(this.host.prefix, false);
    });
  }

  /** The node's own table (mesh.ts), named from the prefix like its devices. */
  private get meshTable(): string {
    return `${this.host.prefix}-node`;
  }

  private netnsPath(taskId: string): string {
    return path.join(this.opts.dir, taskId);
  }

  /** Task ids with a namespace here. */
  private local(): string[] {
    try {
      return fs.readdirSync(this.opts.dir).filter((f) => TASK_ID.test(f));
    } catch {
      return [];
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * Resolves once this node's balancers were programmed from a state in which the task is no
   * endpoint, and the latest state keeps it out; or after `capMs`. The dispatcher takes a task it
   * stops out of every node's balancers in the same push, and the nodes program them at about the
   * same pace: a drain counted from here, rather than from the stop order, outlasts their
   * programming however loaded the nodes are.
   */
  outOfRotation(taskId: string, capMs: number): Promise<void> {
    const ips = new Set((this.state?.attachments.find((a) => a.id === taskId)?.networks ?? []).map((n) => bare(n.address)));
    const inRotation = (state: NodeNetworks__Output | undefined) =>
      !!state && (state.published.some((p) => p.endpoints.some((ip) => ips.has(ip))) || state.services.some((s) => s.endpoints.some((ip) => ips.has(ip))));
    const out = () => !ips.size || (!inRotation(this.state) && !!this.programmed && !inRotation(this.programmed));
    if (out()) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.rotationWaiters.delete(check);
        resolve();
      };
      const check = () => {
        if (out() || this.closed) done();
      };
      const timer = setTimeout(done, capMs);
      this.rotationWaiters.add(check);
    });
  }

  /** Programs the balancers now, beside whatever plumbing is under way; a failure is retried. */
  private rebalance(): void {
    clearTimeout(this.balanceRetry);
    this.balancers
      .run()
      .then((failures) => {
        if (failures.size) throw new Error(`the VIP tables of ${failures.size} containers are not written yet: ${[...failures.values()][0].message}`);
      })
      .catch((err) => {
        if (this.closed) return;
        this.opts.log.warn({ err }, 'programming the balancers failed; retrying');
        this.balanceRetry = setTimeout(() => this.rebalance(), RETRY_MS);
        this.balanceRetry.unref();
      });
  }

  private resync(): void {
    clearTimeout(this.retry);
    if (this.resyncQueued || this.closed) return;
    this.resyncQueued = true;
    this.serial(async () => {
      this.resyncQueued = false;
      const failures = await this.converge();
      for (const [taskId, err] of failures) this.opts.log.warn({ err, taskId }, 'plugging a container into its networks failed');
      if (failures.size) throw new Error(`${failures.size} containers are not plugged in yet`);
    }).catch((err) => {
      this.opts.log.warn({ err }, 'programming the overlay failed; retrying');
      this.retry = setTimeout(() => this.resync(), RETRY_MS);
      this.retry.unref();
    });
  }

  /**
   * The local namespaces with the networks the state gives them (those on none left out), and
   * the networks this node wants for them.
   */
  private layout(state: NodeNetworks__Output): { local: LocalContainer[]; wanted: ReturnType<typeof wantedNetworks> } {
    const vnis = new Set(state.networks.map((n) => n.id));
    const local = this.local()
      .map((id) => ({ id, netns: this.netnsPath(id), networks: state.attachments.find((a) => a.id === id)?.networks.filter((n) => vnis.has(n.network_id)) ?? [] }))
      .filter((c) => c.networks.length);
    return { local, wanted: wantedNetworks(state, new Set(local.flatMap((c) => c.networks.map((n) => n.network_id)))) };
  }

  /**
   * The node's overlay as the state and the local namespaces want it: the networks of the
   * containers here with every remote task on them, each container plugged into its bridges,
   * and the resolver in each container's namespace; then the balancers. Before the first state
   * nothing is known, and nothing is touched. A container that cannot be plugged in holds back no
   * other: its error is returned by task id.
   */
  private async converge(): Promise<Map<string, Error>> {
    const failures = new Map<string, Error>();
    const state = this.state;
    if (!state) return failures;
    const vnis = new Map(state.networks.map((n) => [n.id, n.vni]));
    const { local, wanted } = this.layout(state);
    // Each namespace's resolver costs a process the first time: begun now, awaited last.
    const served = Promise.all(local.map((c) => this.dns.serve(c.id, c.netns).then(() => undefined, (err: Error) => err)));
    await applyOverlay(this.host, wanted);
    await allowBridged(this.host.prefix, wanted.length > 0);
    if (wanted.length) await enableForwarding();
    const reachable = new Set(wanted.flatMap((n) => n.peers.map((p) => p.ip)));
    const links = new Set((await runJson<ObservedLink>('ip', ['link', 'show'])).map((l) => l.ifname));
    for (const c of local) {
      try {
        for (const [i, n] of c.networks.entries()) {
          if (links.has(vethName(this.host.prefix, n.address))) continue;
          const gateway = i === 0 ? gatewayOf(state, n.network_id) : undefined;
          await attachContainer(this.host, { vni: vnis.get(n.network_id)!, netns: c.netns, address: n.address, mac: macForIp(n.address), ifname: `eth${i}`, gateway });
        }
        for (const n of c.networks) reachable.add(bare(n.address));
      } catch (err) {
        failures.set(c.id, err as Error);
      }
    }
    this.reachable = reachable;
    for (const [i, err] of (await served).entries()) if (err && !failures.has(local[i].id)) failures.set(local[i].id, err);
    for (const [id, err] of await this.balancers.run()) if (!failures.has(id)) failures.set(id, err);
    return failures;
  }

  /**
   * Programs the balancers from the latest state: the node's table (published ports, NAT out,
   * isolation) and each container's VIP table that changed. Apart from the plumbing's queue, so
   * that endpoints change within moments of the dispatcher's word even while containers are being
   * plugged in: a task told to stop is taken out of every node's balancers during its drain, and
   * that drain is short. Errors of the node's table throw; a container's is returned by task id.
   */
  private async balance(): Promise<Map<string, Error>> {
    const failures = new Map<string, Error>();
    const state = this.state;
    if (!state || this.closed) return failures;
    const began = performance.now();
    const { local, wanted } = this.layout(state);
    const routable = routableOnly(state, this.reachable);
    if (wanted.length) await applyMesh(this.meshTable, meshState(routable, wanted, this.host.prefix));
    else await removeMesh(this.meshTable);
    const meshMs = Math.round(performance.now() - began);
    for (const c of local) {
      const services = routable.services
        // A dnsrr service (no VIP) is resolved to its tasks by DNS, with nothing to balance here.
        .filter((s) => s.vip && c.networks.some((n) => n.network_id === s.network_id))
        .flatMap((s): VipService[] =>
          (['tcp', 'udp'] as const).map((protocol) => ({ vip: s.vip, protocol, port: 0, endpoints: s.endpoints.map((ip) => ({ ip, port: 0 })) })),
        );
      const ruleset = vipRuleset(VIP_TABLE, services);
      try {
        // By the namespace's inode: a task's namespace made again (after a restart) has none of it.
        const ns = fs.statSync(c.netns).ino;
        const last = this.written.get(c.id);
        if (last?.ns === ns && last.ruleset === ruleset) continue;
        await applyVips({ name: VIP_TABLE, netns: c.netns }, services);
        this.written.set(c.id, { ns, ruleset });
      } catch (err) {
        // A namespace released meanwhile has nothing left to balance.
        if (fs.existsSync(c.netns)) failures.set(c.id, err as Error);
      }
    }
    this.opts.log.debug({ ms: Math.round(performance.now() - began), meshMs, published: state.published.length, containers: local.length }, 'balancers programmed');
    this.programmed = state;
    for (const w of this.rotationWaiters) w();
    return failures;
  }

  /** Deletes the namespace's veths (each takes its host side and bridge port along) and unbinds it. */
  private async removeNetns(taskId: string): Promise<void> {
    const netns = this.netnsPath(taskId);
    this.written.delete(taskId);
    await this.dns.stop(taskId);
    if (!fs.existsSync(netns)) return;
    const links = await runJson<ObservedLink>('ip', ['link', 'show'], { netns }).catch(() => [] as ObservedLink[]);
    for (const l of links) if (l.ifname !== 'lo') await run('ip', ['link', 'del', l.ifname], { netns });
    await run('umount', [netns]).catch((err: Error) => {
      if (!/not mounted/.test(err.message)) throw err;
    });
    fs.rmSync(netns, { force: true });
  }
}
