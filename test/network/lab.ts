/**
 * A two-host overlay built from network namespaces: hosts h1 and h2 joined by a veth pair (the
 * underlay), each with shoal's overlay devices, and "containers" as further namespaces plugged in
 * with veths. Everything is named from a prefix unique to the run, and dispose() removes all of it,
 * even after a failure, then checks nothing is left.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run, runJson } from '../../src/network/command';
import { Ipam } from '../../src/network/ipam';
import { applyOverlay, attachContainer, macForIp, readOverlay, removeOverlay, type OverlayHost, type WantedNetwork } from '../../src/network/overlay';
import { waitFor } from '../helpers/wait';

export const netnsPath = (name: string) => `/run/netns/${name}`;

/** Runs a command inside a namespace and returns its stdout. */
export const inNetns = (name: string, cmd: string, ...args: string[]) => run(cmd, args, { netns: netnsPath(name) });

export interface Container {
  name: string;
  host: 'h1' | 'h2';
  network: string;
  /** With prefix, e.g. 10.0.0.5/24. */
  address: string;
  ip: string;
}

export class Lab {
  /** 5 characters: the overlay prefix, and the start of every namespace name. */
  readonly prefix = `t${Math.random().toString(36).slice(2, 6).padEnd(4, '0')}`;
  readonly ipam = new Ipam({ pool: '10.66.0.0/16' });
  readonly underlay = { h1: '192.168.77.1', h2: '192.168.77.2' };
  readonly containers: Container[] = [];
  private readonly namespaces: string[] = [];
  private readonly processes: ChildProcess[] = [];
  private readonly networks = new Map<string, number>();
  private madeDir: string | undefined;

  /** Made on first use, so that merely loading a test file (`vitest list`) leaves nothing behind. */
  get dir(): string {
    return (this.madeDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-overlay-')));
  }

  ns(short: string): string {
    return `${this.prefix}-${short}`;
  }

  host(h: 'h1' | 'h2'): OverlayHost {
    return { prefix: this.prefix, netns: netnsPath(this.ns(h)), vtep: this.underlay[h] };
  }

  async addNetns(short: string): Promise<string> {
    const name = this.ns(short);
    await run('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    await inNetns(name, 'ip', 'link', 'set', 'lo', 'up');
    return name;
  }

  /** The two hosts and the underlay veth between them. */
  async addHosts(): Promise<void> {
    const [h1, h2] = [await this.addNetns('h1'), await this.addNetns('h2')];
    await inNetns(h1, 'ip', 'link', 'add', 'u0', 'type', 'veth', 'peer', 'name', 'u0', 'netns', netnsPath(h2));
    await inNetns(h1, 'ip', 'addr', 'add', `${this.underlay.h1}/24`, 'dev', 'u0');
    await inNetns(h2, 'ip', 'addr', 'add', `${this.underlay.h2}/24`, 'dev', 'u0');
    await inNetns(h1, 'ip', 'link', 'set', 'u0', 'up');
    await inNetns(h2, 'ip', 'link', 'set', 'u0', 'up');
  }

  addNetwork(name: string): number {
    const { vni } = this.ipam.allocateNetwork(name);
    this.networks.set(name, vni);
    return vni;
  }

  vni(network: string): number {
    return this.networks.get(network)!;
  }

  /** What a host must carry: every network it has a container on, and the containers elsewhere. */
  wanted(h: 'h1' | 'h2', except: string[] = []): WantedNetwork[] {
    const live = this.containers.filter((c) => !except.includes(c.name));
    const nets = [...new Set(live.filter((c) => c.host === h).map((c) => c.network))];
    return nets.map((network) => ({
      vni: this.vni(network),
      peers: live
        .filter((c) => c.network === network && c.host !== h)
        .map((c) => ({ ip: c.ip, mac: macForIp(c.ip), vtep: this.underlay[c.host] })),
    }));
  }

  /** Declares a container; converge() makes the devices, then start() plugs it in. */
  addContainer(name: string, host: 'h1' | 'h2', network: string): Container {
    const address = this.ipam.allocateAddress(network);
    const c = { name, host, network, address, ip: address.split('/')[0] };
    this.containers.push(c);
    return c;
  }

  async converge(except: string[] = []): Promise<void> {
    await applyOverlay(this.host('h1'), this.wanted('h1', except));
    await applyOverlay(this.host('h2'), this.wanted('h2', except));
  }

  async start(c: Container): Promise<void> {
    const ns = await this.addNetns(c.name);
    await attachContainer(this.host(c.host), { vni: this.vni(c.network), netns: netnsPath(ns), address: c.address, mac: macForIp(c.ip) });
  }

  /** busybox httpd in the container, serving a page with its own name (and a large file). */
  async serve(c: Container): Promise<void> {
    const root = path.join(this.dir, c.name);
    fs.mkdirSync(root);
    fs.writeFileSync(path.join(root, 'index.html'), c.name);
    fs.writeFileSync(path.join(root, 'big'), Buffer.alloc(300_000, c.name));
    const child = spawn('nsenter', [`--net=${netnsPath(this.ns(c.name))}`, 'busybox', 'httpd', '-f', '-p', '80', '-h', root], { stdio: 'ignore' });
    this.processes.push(child);
    await waitFor(() => this.fetch(c.name, c.ip), { what: `httpd in ${c.name}` });
  }

  /** One HTTP GET from a container; its body, or throws. (busybox 1.35's wget -T segfaults: coreutils' timeout bounds it.) */
  fetch(from: string, ip: string, file = ''): Promise<string> {
    return inNetns(this.ns(from), 'timeout', '5', 'busybox', 'wget', '-q', '-O', '-', `http://${ip}/${file}`);
  }

  /** n GETs from a container in one shell; each body on a line of its own, or "failed". */
  async fetchMany(from: string, ip: string, n: number): Promise<string[]> {
    const script = `i=0; while [ $i -lt ${n} ]; do timeout 5 busybox wget -q -O - http://${ip}/ || printf failed; echo; i=$((i+1)); done`;
    return (await inNetns(this.ns(from), 'sh', '-c', script)).trim().split('\n');
  }

  /** Names of this run's namespaces, and of its links in the root namespace. */
  async leftovers(): Promise<string[]> {
    const netns = (await run('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0]);
    const links = (await runJson<{ ifname: string }>('ip', ['link', 'show'])).map((l) => l.ifname);
    return [...netns, ...links].filter((n) => n.startsWith(this.prefix));
  }

  /** Stops every process, removes the overlay from both hosts, then every namespace and file. */
  async dispose(): Promise<string[]> {
    const errors: string[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (e) {
        errors.push(`${what}: ${(e as Error).message}`);
      }
    };
    for (const p of this.processes) {
      if (p.exitCode === null && p.signalCode === null) {
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGKILL');
        await exited;
      }
    }
    for (const h of ['h1', 'h2'] as const) {
      if (!this.namespaces.includes(this.ns(h))) continue;
      await attempt(`remove the overlay of ${h}`, async () => {
        await removeOverlay(this.host(h));
        const own = (await readOverlay(this.host(h))).links.filter((l) => l.ifname.startsWith(this.prefix));
        if (own.length) throw new Error(`left ${own.map((l) => l.ifname).join(', ')}`);
      });
    }
    for (const name of this.namespaces.reverse()) await attempt(`delete netns ${name}`, () => run('ip', ['netns', 'del', name]));
    fs.rmSync(this.dir, { recursive: true, force: true });
    return errors;
  }
}
