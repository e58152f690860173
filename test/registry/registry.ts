import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '../helpers/ports';
import { leftovers, testMarker } from '../helpers/runtime';

/**
 * Debian's `docker-registry` (the reference registry:2 server) on loopback, with its storage in
 * a temp dir. kill() and destroy() are safe to call in any state, so afterAll can always call them.
 */
export class TestRegistry {
  readonly marker = testMarker();
  port = 0;
  /** Serve HTTPS with this PEM certificate and key (set before start()). */
  tls: { certificate: string; key: string } | undefined;
  private proc: ChildProcess | undefined;
  private madeDir: string | undefined;

  /**
   * `auth` alone: htpasswd (basic) auth with that user. With `token`: bearer-token auth against the
   * token server at `token.realm`, and `auth` is what pushes send to it.
   */
  constructor(
    private readonly auth?: { username: string; password: string },
    private readonly token?: { realm: string; service: string; issuer: string; rootCertBundle: string },
  ) {}

  /** Made on first use, so that merely loading a test file (`vitest list`) leaves nothing behind. */
  get dir(): string {
    return (this.madeDir ??= fs.mkdtempSync(path.join(os.tmpdir(), `${this.marker}-registry-`)));
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get storage(): string {
    return path.join(this.dir, 'data');
  }

  async start(): Promise<void> {
    this.port ||= await freePort();
    const lines = [
      'version: 0.1',
      // The access log is how blobGets() counts downloads.
      'log: {level: error, accesslog: {disabled: false}}',
      `storage: {filesystem: {rootdirectory: ${JSON.stringify(this.storage)}}, delete: {enabled: true}}`,
      `http: {addr: "${this.host}", secret: "${randomBytes(8).toString('hex')}"${this.tls ? `, tls: {certificate: ${JSON.stringify(this.tls.certificate)}, key: ${JSON.stringify(this.tls.key)}}` : ''}}`,
    ];
    if (this.token) {
      const t = this.token;
      lines.push(`auth: {token: {realm: ${JSON.stringify(t.realm)}, service: ${JSON.stringify(t.service)}, issuer: ${JSON.stringify(t.issuer)}, rootcertbundle: ${JSON.stringify(t.rootCertBundle)}}}`);
    } else if (this.auth) {
      const htpasswd = path.join(this.dir, 'htpasswd');
      fs.writeFileSync(htpasswd, `${this.auth.username}:${bcrypt(this.auth.password)}\n`);
      lines.push(`auth: {htpasswd: {realm: shoal-test, path: ${JSON.stringify(htpasswd)}}}`);
    }
    fs.writeFileSync(path.join(this.dir, 'config.yml'), `${lines.join('\n')}\n`);
    const log = fs.openSync(path.join(this.dir, 'registry.log'), 'a');
    this.proc = spawn('docker-registry', ['serve', path.join(this.dir, 'config.yml')], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    const deadline = Date.now() + 15_000;
    while (!(await this.answers())) {
      if (this.proc.exitCode !== null || Date.now() > deadline) {
        throw new Error(`docker-registry did not start: ${fs.readFileSync(path.join(this.dir, 'registry.log'), 'utf8').slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = net.connect(this.port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
  }

  /** Pushes an archive (`oci-archive:PATH` or `docker-archive:PATH`) as `repo:tag`. */
  push(source: string, ref: string, opts: { all?: boolean; dockerFormat?: boolean } = {}): void {
    const args = ['copy', '--insecure-policy', '--dest-tls-verify=false', '--quiet'];
    if (this.auth) args.push('--dest-creds', `${this.auth.username}:${this.auth.password}`);
    if (opts.all) args.push('--all');
    // Docker's image manifest v2 schema 2 instead of OCI's.
    if (opts.dockerFormat) args.push('--format', 'v2s2');
    execFileSync('skopeo', [...args, source, `docker://${this.host}/${ref}`], { stdio: 'pipe' });
  }

  /** push(), without blocking this process: needed when a token server in this process must answer skopeo. */
  async pushAsync(source: string, ref: string): Promise<void> {
    const args = ['copy', '--insecure-policy', '--dest-tls-verify=false', '--quiet'];
    if (this.auth) args.push('--dest-creds', `${this.auth.username}:${this.auth.password}`);
    await new Promise<void>((resolve, reject) =>
      execFile('skopeo', [...args, source, `docker://${this.host}/${ref}`], { timeout: 60_000 }, (err, _out, stderr) =>
        err ? reject(new Error(`skopeo copy failed: ${stderr || err.message}`)) : resolve(),
      ),
    );
  }

  /**
   * How many times each blob was downloaded (a GET answered 200), by digest, from the registry's
   * own access log: proof of what was fetched, whatever a store ends up holding. With `since` (an
   * earlier result), only the downloads after it.
   */
  blobGets(since = new Map<string, number>()): Map<string, number> {
    const counts = new Map<string, number>();
    const log = fs.readFileSync(path.join(this.dir, 'registry.log'), 'utf8');
    for (const [, digest] of log.matchAll(/"GET \/v2\/\S+\/blobs\/(sha256:[a-f0-9]{64}) HTTP\/[\d.]+" 200 /g)) counts.set(digest, (counts.get(digest) ?? 0) + 1);
    for (const [digest, n] of since) {
      const left = (counts.get(digest) ?? 0) - n;
      if (left > 0) counts.set(digest, left);
      else counts.delete(digest);
    }
    return counts;
  }

  /** The file the registry keeps a blob's bytes in. */
  blobFile(digest: string): string {
    const hex = digest.replace(/^sha256:/, '');
    return path.join(this.storage, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
  }

  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  /** Kills the registry and removes its files; throws if its process or a file is left. */
  async destroy(): Promise<void> {
    try {
      await this.kill();
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
    const left = [...leftovers(this.marker), ...(fs.existsSync(this.dir) ? [`dir: ${this.dir}`] : [])];
    if (left.length) throw new Error(`test registry ${this.marker} left behind:\n${left.join('\n')}`);
  }
}

/** A bcrypt hash (what the registry's htpasswd wants) through libcrypt, via perl's crypt(). */
function bcrypt(password: string): string {
  const alphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const salt = [...randomBytes(22)].map((b) => alphabet[b % 64]).join('').replace(/.$/, '.');
  const hash = execFileSync('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', password, `$2b$05$${salt}`], { encoding: 'utf8' });
  if (!hash.startsWith('$2b$')) throw new Error('this libcrypt cannot make bcrypt hashes');
  return hash;
}

/**
 * A TCP proxy in front of a registry that lets the response to a request containing `match`
 * through until `afterBytes`, then passes nothing more; `stalled` resolves at that point. Closing the
 * upstream (the registry dying) closes the client's side too.
 */
export class StallingProxy {
  port = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  stalled: Promise<void>;
  private onStall!: () => void;

  constructor(
    private readonly upstreamPort: number,
    private readonly match: string,
    private readonly afterBytes: number,
  ) {
    this.stalled = new Promise((r) => (this.onStall = r));
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.upstreamPort, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      let matched = false;
      let held = false;
      let sent = 0;
      client.on('data', (d: Buffer) => {
        if (d.toString('latin1').includes(this.match)) matched = true;
        upstream.write(d);
      });
      upstream.on('data', (d: Buffer) => {
        // Held: read on (so the registry's exit is seen) but pass nothing more.
        if (held) return;
        if (matched && sent + d.length > this.afterBytes) {
          client.write(d.subarray(0, Math.max(0, this.afterBytes - sent)));
          held = true;
          this.onStall();
          return;
        }
        sent += d.length;
        client.write(d);
      });
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      upstream.on('close', close).on('error', close);
      client.on('close', close).on('error', close);
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}
