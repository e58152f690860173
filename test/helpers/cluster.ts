import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from '../../src/cli/client';
import type { Node__Output } from '../../src/gen/shoal/v1/Node';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import type { CliResult } from './test-node';

/** The repository root, whether this runs from test/ under vitest or from dist/ in a benchmark. */
function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'deploy', 'cluster.sh'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the shoal repository root');
    dir = up;
  }
  return dir;
}

const ROOT = repoRoot();
const SCRIPT = path.join(ROOT, 'deploy', 'cluster.sh');
const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const RUN_BASE = '/run/shoal-cluster';

export interface ClusterOptions {
  managers?: number;
  workers?: number;
  /** false: the hosts' daemons run, but nobody has run init or join. */
  join?: boolean;
  /** More shoald flags for every host. */
  daemonArgs?: string[];
  /** What runs each shoald: node by default, or a wrapper that adds node flags (a profiler's). */
  node?: string;
}

export interface WaitOptions {
  timeoutMs?: number;
  /** What is awaited, for the timeout's error message. */
  what?: string;
}

/** Exit status of deploy/cluster.sh up when the name or the subnet is taken. */
const TAKEN = 3;

class ScriptError extends Error {
  constructor(
    message: string,
    readonly code: number | string | undefined,
  ) {
    super(message);
  }
}

/** Runs deploy/cluster.sh; rejects with its output when it fails. */
function script(args: string[], timeoutMs = 120_000, node = process.execPath): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [SCRIPT, ...args],
      { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...process.env, NODE: node }, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new ScriptError(`deploy/cluster.sh ${args.join(' ')} failed (${err.killed ? `killed after ${timeoutMs} ms` : `exit ${err.code}`}):\n${stdout}${stderr}`, err.code ?? undefined));
        else resolve(stdout);
      },
    );
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One host of a TestCluster: a network namespace with its own address on the cluster's bridge,
 * running its own shoald. Its processes, containers and files are those of deploy/cluster.sh.
 */
export class TestHost {
  constructor(
    private readonly cluster: TestCluster,
    /** h1, h2, ... */
    readonly name: string,
    readonly role: 'manager' | 'worker',
    readonly addr: string,
    readonly netns: string,
    readonly socket: string,
    readonly dataDir: string,
    readonly runcRoot: string,
    readonly cgroupParent: string,
    /** What the host's shoald reports as its hostname. */
    readonly hostname: string,
  ) {}

  /** Runs the shoal CLI against this host's daemon. */
  shoal(...args: string[]): CliResult {
    const r = spawnSync(process.execPath, [CLI, '-H', this.socket, ...args], { encoding: 'utf8', timeout: 120_000 });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  /**
   * One call to this host's control API from this process: what a test polls, without a CLI
   * process (half a second of CPU) per poll. A connection of its own each time, so a restarted
   * shoald is reached at once rather than after a reconnect backoff.
   */
  async api<T>(call: (client: Client) => Promise<T>): Promise<T> {
    const client = new Client(this.socket);
    try {
      return await call(client);
    } finally {
      client.close();
    }
  }

  /** Like shoal(), but throws with the CLI's output when it fails. */
  ok(...args: string[]): string {
    const r = this.shoal(...args);
    if (r.code !== 0) throw new Error(`${this.name}: shoal ${args.join(' ')} exited ${r.code}:\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** Runs a command inside this host's network namespace (not through a shell). */
  exec(...cmd: string[]): CliResult {
    const r = spawnSync('nsenter', [`--net=/run/netns/${this.netns}`, ...cmd], { encoding: 'utf8', timeout: 60_000 });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  /** Signals the host's shoald and waits until it has exited. Its etcd member and containers live on. */
  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.cluster.run('kill', this.name, '--signal', signal.replace(/^SIG/, ''));
  }

  /** Signals the host's etcd member (kill -9 by default) and waits until it has exited. */
  async killEtcd(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.cluster.run('kill', this.name, '--etcd', '--signal', signal.replace(/^SIG/, ''));
  }

  /** Starts the host's shoald again (after kill) and waits until it answers. */
  async start(): Promise<void> {
    await this.cluster.run('start', this.name);
  }

  /** Drops every packet on the host's link to the others, silently, until healLink(). */
  async cutLink(): Promise<void> {
    await this.cluster.run('cut', this.name);
  }

  async healLink(): Promise<void> {
    await this.cluster.run('heal', this.name);
  }

  /**
   * Ids of the containers runc knows on this host: one state directory each under its runc root.
   * Read directly because `runc list` fails while a delete is under way.
   */
  containerIds(): string[] {
    try {
      return fs.readdirSync(this.runcRoot).filter((f) => /^[a-z0-9]{25}$/.test(f));
    } catch {
      return [];
    }
  }

  /** The last lines of the host's shoald log. */
  daemonLog(lines = 40): string {
    return lastLines(path.join(this.dataDir, 'shoald.log'), lines);
  }

  /** The last lines of the log of the host's etcd member, if it has one. */
  etcdLog(lines = 40): string {
    return lastLines(path.join(this.dataDir, 'etcd', 'etcd.log'), lines);
  }
}

function lastLines(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * A cluster of hosts on this machine, made and removed by deploy/cluster.sh under a name and a
 * subnet of its own, so that test files never share anything.
 */
export class TestCluster {
  private constructor(
    readonly name: string,
    readonly subnet: string,
    /** The bridge's own address: how the hosts reach this machine (a registry a test serves). */
    readonly bridgeAddr: string,
    readonly hosts: TestHost[],
    private readonly node = process.execPath,
  ) {}

  get managers(): TestHost[] {
    return this.hosts.filter((h) => h.role === 'manager');
  }

  get workers(): TestHost[] {
    return this.hosts.filter((h) => h.role === 'worker');
  }

  /** `cluster.sh up`: the hosts, their daemons, and (unless join is false) init on h1 and joins. */
  static async create(opts: ClusterOptions = {}): Promise<TestCluster> {
    const { managers = 1, workers = 0, join = true, daemonArgs = [], node = process.execPath } = opts;
    const args = ['--managers', String(managers), '--workers', String(workers), ...(join ? [] : ['--no-join'])];
    // A random name and subnet; the script refuses one that is taken (under a lock), so retry.
    for (let attempt = 0; ; attempt++) {
      const name = `k${Math.random().toString(36).slice(2, 7).padEnd(5, '0')}`;
      const subnet = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}.0/24`;
      try {
        await script(['up', '--name', name, '--subnet', subnet, ...args, '--', ...daemonArgs], 300_000, node);
      } catch (err) {
        if (err instanceof ScriptError && err.code === TAKEN) {
          if (attempt < 5) continue;
          throw err;
        }
        // The name was ours from the moment the script claimed it: remove what it made.
        const left = await new TestCluster(name, subnet, '', []).destroy().then(
          () => '',
          (e: Error) => `\n${e.message}`,
        );
        throw new Error(`${(err as Error).message}${left}`);
      }
      return TestCluster.load(name, node);
    }
  }

  /** The cluster `name` as its hosts file describes it. */
  private static load(name: string, node: string): TestCluster {
    const lines = fs.readFileSync(path.join(RUN_BASE, name, 'hosts'), 'utf8').split('\n');
    const [, subnet, bridge] = /^# subnet:\t(\S+)\tbridge \S+ (\S+)/m.exec(lines.join('\n')) ?? [];
    const cluster: TestCluster = new TestCluster(name, subnet, bridge, [], node);
    for (const line of lines) {
      if (!line || line.startsWith('#')) continue;
      const [host, role, addr, netns, socket, dataDir, runcRoot, cgroupParent, hostname] = line.split('\t');
      cluster.hosts.push(new TestHost(cluster, host, role as 'manager' | 'worker', addr, netns, socket, dataDir, runcRoot, cgroupParent, hostname));
    }
    return cluster;
  }

  host(name: string): TestHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`cluster ${this.name} has no host ${name}`);
    return h;
  }

  /** Runs a cluster.sh command on this cluster. */
  run(command: string, ...args: string[]): Promise<string> {
    return script([command, '--name', this.name, ...args], undefined, this.node);
  }

  /** What the first manager that answers says: the leader may be the one a test just killed. */
  async ask<T>(call: (client: Client) => Promise<T>): Promise<T> {
    let last: unknown;
    for (const m of this.managers) {
      try {
        return await m.api(call);
      } catch (err) {
        last = err;
      }
    }
    throw new Error(`no manager answers: ${(last as Error).message}`);
  }

  /** A manager that answers, to run a CLI command on. */
  async answering(): Promise<TestHost> {
    for (const m of this.managers) if (await m.api((c) => c.listNodes()).then(() => true, () => false)) return m;
    throw new Error('no manager answers');
  }

  async nodes(): Promise<Node__Output[]> {
    return (await this.ask((c) => c.listNodes())).nodes;
  }

  async tasks(service: string): Promise<Task__Output[]> {
    return (await this.ask((c) => c.listTasks({ service }))).tasks;
  }

  /** The service's tasks that are meant to run and do. */
  async running(service: string): Promise<Task__Output[]> {
    return (await this.tasks(service)).filter((t) => t.desired_state === 'RUNNING' && t.status!.state === 'RUNNING');
  }

  /**
   * Removes the services (retrying: right after a failover a manager may answer before it can
   * write) and waits until no host has a container left, naming what is left if one does.
   */
  async removeServices(names: string[], timeoutMs = 90_000): Promise<void> {
    for (const name of names) {
      await this.waitFor(async () => {
        const r = (await this.answering()).shoal('service', 'rm', name);
        if (r.code !== 0 && !/not found/.test(r.stderr)) throw new Error(r.stderr.trim());
        return true;
      }, { what: `service ${name} removed` });
    }
    await this.waitFor(() => {
      const left = this.hosts.filter((host) => host.containerIds().length > 0);
      if (left.length > 0) throw new Error(`containers left on ${left.map((host) => `${host.name} (${host.containerIds().join(', ')})`).join('; ')}`);
      return true;
    }, { what: 'every container gone', timeoutMs });
  }

  /** Each host's last shoald (and etcd) log lines, for a failed test: destroy() removes the logs. */
  printLogs(): void {
    for (const host of this.hosts) {
      process.stderr.write(`──── ${host.name} shoald.log (last lines)\n${host.daemonLog(25)}\n`);
      if (host.role === 'manager') process.stderr.write(`──── ${host.name} etcd.log (last lines)\n${host.etcdLog(15)}\n`);
    }
  }

  /** The host whose shoald says it is the leader; throws unless exactly one does (use with waitFor). */
  async leader(): Promise<TestHost> {
    const says = await Promise.all(this.managers.map((h) => h.api((c) => c.info()).then((i) => i.leader, () => false)));
    const leaders = this.managers.filter((_, i) => says[i]);
    if (leaders.length !== 1) throw new Error(`${leaders.length} managers say they lead: ${leaders.map((h) => h.name).join(', ') || 'none'}`);
    return leaders[0];
  }

  /**
   * Polls cond until it returns something other than undefined, null or false, and returns that.
   * A throw counts as "not yet"; the last one is in the timeout's message.
   */
  async waitFor<T>(cond: () => T | Promise<T>, { timeoutMs = 60_000, what = 'the condition' }: WaitOptions = {}): Promise<Exclude<T, undefined | null | false>> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      try {
        const v = await cond();
        if (v !== undefined && v !== null && v !== false) return v as Exclude<T, undefined | null | false>;
        last = `it returned ${String(v)}`;
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`cluster ${this.name}: no ${what} within ${timeoutMs} ms; last: ${last}`);
      await sleep(200);
    }
  }

  /**
   * Removes every process, container, mount, cgroup, namespace, link and file of the cluster
   * (cluster.sh down, within a time limit), then throws naming anything that is left.
   */
  async destroy(timeoutMs = 120_000): Promise<void> {
    let failure = '';
    await script(['down', '--name', this.name], timeoutMs).catch((err: Error) => (failure = err.message));
    const left = await script(['check', '--name', this.name], 30_000).then(
      () => '',
      (err: Error) => err.message,
    );
    if (left || failure) throw new Error(`cluster ${this.name} was not removed:\n${left || failure}`);
  }
}
