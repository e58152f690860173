import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { quietLogger } from '../../src/common/logger';
import { Runtime } from '../../src/worker/runtime/runtime';
import { freePort } from './ports';

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

/**
 * A real shoald in its own data dir, socket, ports, runc root and cgroup parent, so tests never
 * touch a shoal the machine runs for real; destroy() removes everything it made.
 */
export class TestNode {
  readonly id = Math.random().toString(36).slice(2, 8);
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-node-'));
  readonly socket = path.join(this.dir, 'shoal.sock');
  readonly cgroupParent = `shoal-test-${this.id}`;
  readonly runcRoot = `/run/shoal-test-${this.id}`;
  /** More shoald flags, e.g. --insecure-registry. */
  daemonArgs: string[] = [];
  private proc: ChildProcess | undefined;
  private ports: [number, number, number] | undefined;

  get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  async start(): Promise<void> {
    if (!fs.existsSync(DAEMON)) throw new Error('dist/ is missing: run `npm run build` (npm test does it)');
    this.ports ??= [await freePort(), await freePort(), await freePort()];
    const log = fs.openSync(path.join(this.dir, 'shoald.log'), 'a');
    this.proc = spawn(
      process.execPath,
      [
        DAEMON,
        `--data-dir=${this.dataDir}`,
        `--socket=${this.socket}`,
        `--etcd-client-port=${this.ports[0]}`,
        `--etcd-peer-port=${this.ports[1]}`,
        `--listen-addr=127.0.0.1:${this.ports[2]}`,
        `--cgroup-parent=${this.cgroupParent}`,
        `--runc-root=${this.runcRoot}`,
        '--log-level=debug',
        ...this.daemonArgs,
      ],
      { stdio: ['ignore', log, log] },
    );
    fs.closeSync(log);
    const deadline = Date.now() + 20_000;
    while (this.shoal('info').code !== 0) {
      if (this.proc.exitCode !== null) throw new Error(`shoald exited during start-up:\n${this.daemonLog()}`);
      if (Date.now() > deadline) throw new Error(`shoald did not answer within 20s:\n${this.daemonLog()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Ids of the containers runc knows on this node: one state directory each under the runc root,
   * removed by `runc delete`. Read directly because `runc list` fails while a delete is under way.
   */
  containerIds(): string[] {
    try {
      return fs.readdirSync(this.runcRoot).filter((f) => /^[a-z0-9]{25}$/.test(f));
    } catch {
      return [];
    }
  }

  /** Runs the shoal CLI against this node. */
  shoal(...args: string[]): CliResult {
    const r = spawnSync(process.execPath, [CLI, '-H', this.socket, ...args], { encoding: 'utf8', timeout: 120_000 });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  /** Like shoal(), but throws with the CLI's output when it fails. */
  ok(...args: string[]): string {
    const r = this.shoal(...args);
    if (r.code !== 0) throw new Error(`shoal ${args.join(' ')} exited ${r.code}:\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await exited;
  }

  daemonLog(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'shoald.log'), 'utf8').split('\n').slice(-40).join('\n');
    } catch {
      return '';
    }
  }

  /** Stops the daemon and its etcd, removes every container, mount, cgroup and file it made. */
  async destroy(): Promise<void> {
    await this.stop('SIGTERM').catch(() => undefined);
    const runtime = new Runtime({ root: path.join(this.dataDir, 'containers'), runcRoot: this.runcRoot, cgroupParent: this.cgroupParent, log: quietLogger() });
    await runtime.removeAll();
    runtime.close();
    killEtcdOf(path.join(this.dataDir, 'etcd'));
    fs.rmSync(this.runcRoot, { recursive: true, force: true });
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** After a kill -9 of shoald its etcd member lives on; find it by pid file and stop it. */
function killEtcdOf(etcdDir: string): void {
  try {
    const pid = Number(fs.readFileSync(path.join(etcdDir, 'etcd.pid'), 'utf8'));
    if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(etcdDir)) process.kill(pid, 'SIGKILL');
  } catch {
    // Not running.
  }
}

/** Builds the test image tar with the repo's script; returns its path. */
export function buildTestImage(dir: string, format: 'oci' | 'docker' = 'oci', tag = 'shoal-test:latest'): string {
  const out = path.join(dir, `image-${format}-${tag.replace(/[^a-z0-9]/gi, '_')}.tar`);
  const r = spawnSync('bash', [path.join(ROOT, 'deploy', 'build-test-image.sh'), '--format', format, '--tag', tag, out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build-test-image.sh failed: ${r.stderr}`);
  return out;
}
