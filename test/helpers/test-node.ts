import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { quietLogger } from '../../src/common/logger';
import { Runtime } from '../../src/worker/runtime/runtime';
import { freePort } from './ports';
import { leftovers, testMarker } from './runtime';
import { waitFor, withTimeout } from './wait';

/** The repository root, whether this runs from test/ under vitest or from dist/ in a benchmark. */
function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'deploy', 'build-test-image.sh'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the shoal repository root');
    dir = up;
  }
  return dir;
}

const ROOT = repoRoot();
const DAEMON = path.join(ROOT, 'dist', 'src', 'daemon', 'main.js');
const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestNodeOptions {
  /** Run shoald under this command, e.g. ['nsenter', '--net=/run/netns/n1'] (it must exec, not fork). */
  prefix?: string[];
  /** More shoald flags; see TestNode.daemonArgs. */
  daemonArgs?: string[];
}

/** Flags every test node gets before its own daemonArgs (a later flag wins, so those can override these). */
const DEFAULT_FLAGS = [
  '--log-level=debug',
  // Automatic image collection would delete the images a test loaded whenever the host's disk is
  // fuller than the default 85%; tests about collection turn it on with their own flags.
  '--image-gc-high-percent=0',
];

/**
 * Time limits for tests that drive a node through the CLI. Each CLI call starts a Node process,
 * which takes seconds on a loaded two-core host, so a test of a dozen calls outlives vitest's
 * default minute. They are limits against hangs, not figures: no test asserts a duration.
 */
export const NODE_TEST_TIMEOUT_MS = 300_000;
/** How long a test waits for a node to reach a state (tasks running, containers gone, a log line). */
export const NODE_WAIT_MS = 60_000;

/** How long destroy() gives each of its steps before it records the step as failed and goes on. */
const STOP_TIMEOUT_MS = 15_000;
const REMOVE_TIMEOUT_MS = 20_000;
const ETCD_TIMEOUT_MS = 5_000;

/**
 * A real shoald in its own data dir, socket, ports, runc root and cgroup parent, so tests never
 * touch a shoal the machine runs for real; destroy() removes everything it made and checks that
 * nothing is left. All of its names contain `marker`.
 */
export class TestNode {
  readonly marker = testMarker();
  readonly id = this.marker.slice('shoal-test-'.length);
  readonly cgroupParent = this.marker;
  readonly runcRoot = `/run/${this.marker}`;
  /** More shoald flags, e.g. --insecure-registry, after the defaults (--image-gc-high-percent=0, --log-level=debug), which they override. */
  daemonArgs: string[];
  /** The command shoald runs under, e.g. nsenter into a network namespace. */
  prefix: string[];
  private proc: ChildProcess | undefined;
  private ports: [number, number, number] | undefined;
  private madeDir: string | undefined;

  constructor(opts: TestNodeOptions = {}) {
    this.daemonArgs = opts.daemonArgs ?? [];
    this.prefix = opts.prefix ?? [];
  }

  /** Made on first use, so that merely loading a test file (`vitest list`) leaves nothing behind. */
  get dir(): string {
    return (this.madeDir ??= fs.mkdtempSync(path.join(os.tmpdir(), `${this.marker}-`)));
  }

  get socket(): string {
    return path.join(this.dir, 'shoal.sock');
  }

  get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  /** Whether the shoald that start() spawned is still running. */
  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** The command line start() runs: prefix, node, shoald and its flags. */
  async command(): Promise<string[]> {
    this.ports ??= [await freePort(), await freePort(), await freePort()];
    return [
      ...this.prefix,
      process.execPath,
      DAEMON,
      `--data-dir=${this.dataDir}`,
      `--socket=${this.socket}`,
      `--etcd-client-port=${this.ports[0]}`,
      `--etcd-peer-port=${this.ports[1]}`,
      `--listen-addr=127.0.0.1:${this.ports[2]}`,
      `--cgroup-parent=${this.cgroupParent}`,
      `--runc-root=${this.runcRoot}`,
      ...DEFAULT_FLAGS,
      ...this.daemonArgs,
    ];
  }

  async start(): Promise<void> {
    if (!fs.existsSync(DAEMON)) throw new Error('dist/ is missing: run `npm run build` (npm test does it)');
    if (this.running) throw new Error(`shoald of test node ${this.marker} is already running`);
    const [cmd, ...args] = await this.command();
    const log = fs.openSync(path.join(this.dir, 'shoald.log'), 'a');
    const proc = spawn(cmd, args, { stdio: ['ignore', log, log] });
    this.proc = proc;
    fs.closeSync(log);
    try {
      await waitFor(
        () => {
          if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`shoald exited during start-up (${proc.exitCode ?? proc.signalCode})`);
          return this.shoal('info').code === 0;
        },
        { what: `shoald of test node ${this.marker} to answer`, timeoutMs: 20_000, intervalMs: 100 },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${this.daemonLog()}`);
    }
  }

  /**
   * Ids of the containers runc knows on this node: one state directory each under the runc root,
   * removed by `runc delete`. Read directly because `runc list` fails while a delete is under way.
   * Only a missing runc root means none; any other error is thrown.
   */
  containerIds(): string[] {
    try {
      return fs.readdirSync(this.runcRoot).filter((f) => /^[a-z0-9]{25}$/.test(f));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  /** Runs the shoal CLI against this node. */
  shoal(...args: string[]): CliResult {
    const r = spawnSync(process.execPath, [CLI, '-H', this.socket, ...args], { encoding: 'utf8', timeout: 120_000 });
    if (r.error) throw new Error(`shoal ${args.join(' ')} could not run: ${r.error.message}`);
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  /** Like shoal(), but throws with the CLI's output when it fails. */
  ok(...args: string[]): string {
    const r = this.shoal(...args);
    if (r.code !== 0) throw new Error(`shoal ${args.join(' ')} exited ${r.code}:\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** Like shoal(), for a command that must fail: throws if it exits 0, else returns its stderr. */
  fails(...args: string[]): string {
    const r = this.shoal(...args);
    if (r.code === 0) throw new Error(`shoal ${args.join(' ')} succeeded but should have failed:\n${r.stdout}${r.stderr}`);
    return r.stderr;
  }

  /** Signals shoald and waits for it to exit; after `timeoutMs` it is SIGKILLed and this throws. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
    const p = this.proc;
    if (!p || !this.running) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    try {
      await withTimeout(exited, timeoutMs, `shoald of test node ${this.marker} after ${signal}`);
    } catch (err) {
      p.kill('SIGKILL');
      await exited;
      throw new Error(`${(err as Error).message}; killed it\n${this.daemonLog()}`);
    }
  }

  daemonLog(lines = 40): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'shoald.log'), 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /**
   * Brings the node back to running with no service and no container, for an afterEach: starts
   * shoald if a test left it stopped, removes every service and waits until every container is
   * gone. Throws naming what is still there.
   */
  async empty(timeoutMs = NODE_WAIT_MS): Promise<void> {
    if (!this.running) await this.start();
    const ls = this.shoal('service', 'ls', '-q');
    // A node that was never initialised has no services.
    const services = ls.code === 0 ? ls.stdout.split('\n').filter(Boolean) : [];
    if (ls.code !== 0 && !/shoal init/.test(ls.stderr)) throw new Error(`cannot list the services of test node ${this.marker}: ${ls.stderr}`);
    if (services.length) this.ok('service', 'rm', ...services);
    await waitFor(
      () => {
        const left = [
          ...(ls.code === 0 ? this.ok('service', 'ls', '-q').split('\n').filter(Boolean).map((s) => `service ${s}`) : []),
          ...this.containerIds().map((c) => `container ${c}`),
        ];
        if (left.length) throw new Error(`still there: ${left.join(', ')}`);
        return true;
      },
      { what: `test node ${this.marker} to have no service and no container`, timeoutMs },
    );
  }

  /** Mounts, cgroups, runc containers and processes of this node that exist now (after destroy(): none). */
  leftovers(): string[] {
    return leftovers(this.marker, this.runcRoot);
  }

  /**
   * Stops the daemon and its etcd, removes every container, mount, cgroup and file it made, then
   * checks that none of them is left. Each step runs even if an earlier one failed, within a time
   * limit; it throws naming every failed step and everything left behind.
   */
  async destroy(): Promise<void> {
    const failed: string[] = [];
    const step = async (what: string, timeoutMs: number, fn: () => unknown): Promise<void> => {
      try {
        await withTimeout(Promise.resolve().then(fn), timeoutMs, what);
      } catch (err) {
        failed.push(`${what}: ${(err as Error).message}`);
      }
    };
    await step('stopping shoald', STOP_TIMEOUT_MS + 5_000, () => this.stop('SIGTERM'));
    await step('removing containers', REMOVE_TIMEOUT_MS, async () => {
      const runtime = new Runtime({ root: path.join(this.dataDir, 'containers'), runcRoot: this.runcRoot, cgroupParent: this.cgroupParent, log: quietLogger() });
      try {
        await runtime.removeAll();
      } finally {
        runtime.close();
      }
    });
    // A stopping shoald keeps its containers' namespaces for the next one (their veths go with them).
    await step('removing network namespaces', 10_000, () => {
      const dir = path.join(this.dataDir, 'netns');
      for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
        const r = spawnSync('umount', [path.join(dir, f)], { encoding: 'utf8' });
        if (r.status !== 0 && !/not mounted/.test(r.stderr)) throw new Error(`umount ${f}: ${r.stderr.trim()}`);
        fs.rmSync(path.join(dir, f), { force: true });
      }
    });
    await step('stopping etcd', ETCD_TIMEOUT_MS + 1_000, () => stopEtcdOf(path.join(this.dataDir, 'etcd')));
    let left: string[] = [];
    await step('looking for leftovers', 10_000, () => (left = this.leftovers()));
    await step('removing files', 10_000, () => {
      fs.rmSync(this.runcRoot, { recursive: true, force: true });
      fs.rmSync(this.dir, { recursive: true, force: true });
    });
    if (failed.length || left.length) {
      throw new Error(`test node ${this.marker} was not cleaned up:\n${[...failed, ...left.map((l) => `left behind: ${l}`)].join('\n')}`);
    }
  }
}

/** After a kill -9 of shoald its etcd member lives on (it is detached): find it by pid file, kill it and wait until it is gone. */
async function stopEtcdOf(etcdDir: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(path.join(etcdDir, 'etcd.pid'), 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // stopped by shoald, or never started
    throw err;
  }
  const ours = () => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(etcdDir) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    } catch {
      return false; // no such process
    }
  };
  if (!ours()) return;
  process.kill(pid, 'SIGKILL');
  await waitFor(() => !ours(), { what: `etcd (pid ${pid}) to exit`, timeoutMs: ETCD_TIMEOUT_MS });
}

/** Builds the test image tar with the repo's script; returns its path. */
export function buildTestImage(dir: string, format: 'oci' | 'docker' = 'oci', tag = 'shoal-test:latest'): string {
  const out = path.join(dir, `image-${format}-${tag.replace(/[^a-z0-9]/gi, '_')}.tar`);
  const r = spawnSync('bash', [path.join(ROOT, 'deploy', 'build-test-image.sh'), '--format', format, '--tag', tag, out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build-test-image.sh failed: ${r.stderr}`);
  return out;
}
