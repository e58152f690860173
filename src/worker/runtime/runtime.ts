import { randomBytes } from 'node:crypto';
import { mkdirSync, promises as fs } from 'node:fs';
import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import { diskFullError, isNoSpace } from '../../common/disk';
import { alreadyExists, failedPrecondition, internal, invalidArgument, notFound, ShoalError } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { hostControllerDir, oomKills, removeCgroupParent, removeContainerCgroups } from './cgroups';
import { spawnConmon } from './conmon';
import { Spawner } from './exec';
import { ExitWatcher, readExitFile } from './exits';
import { LogRotator } from './log-rotation';
import { checkId, isId, Layout } from './paths';
import { mountPoints, mountRootfs, prepareRootfs, unmountRootfs } from './rootfs';
import { processStart, Runc } from './runc';
import { buildSpec, hostsFile } from './spec';
import type { ContainerConfig, ContainerState, ExecOutcome, RuntimeOptions } from './types';
import { type ExecUser, resolveUser } from './user';

export type { ContainerConfig, ContainerState, ContainerStatus, ExecOutcome, RuntimeOptions } from './types';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs containers with runc under conmon. Every container's state lives on disk (bundle dir, runc
 * state, conmon's exit file), so a new Runtime on the same dirs sees and adopts what an earlier
 * one (or an earlier daemon) started. Safe to call concurrently for different containers.
 */
export class Runtime {
  private readonly layout: Layout;
  private readonly runc: Runc;
  private readonly conmonPath: string;
  private readonly log: Logger | undefined;
  private readonly exits: ExitWatcher;
  /** Forks mount, umount, conmon and runc for us: a fork of the daemon itself costs more the bigger it is. */
  private readonly spawner: Spawner;
  private readonly creating = new Set<string>();
  /** Set by close(): a stopping daemon kills and removes nothing more (see create). */
  private closed = false;
  private readonly removing = new Map<string, Promise<void>>();
  /** Resolved users by user and image layers (see userOf). */
  private readonly users = new Map<string, Promise<ExecUser>>();
  /** Present when logs are capped (logSizeMax). */
  private readonly rotator: LogRotator | undefined;

  constructor(private readonly opts: RuntimeOptions) {
    for (const [k, v] of [['root', opts.root], ['runcRoot', opts.runcRoot]] as const) {
      if (!path.isAbsolute(v)) throw invalidArgument(`runtime ${k} "${v}" must be an absolute path`);
    }
    if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(opts.cgroupParent) || opts.cgroupParent.split('/').some((p) => p === '..' || p === '.')) {
      throw invalidArgument(`invalid cgroup parent "${opts.cgroupParent}": use a relative path like "shoal"`);
    }
    this.layout = new Layout(opts.root, opts.runcRoot);
    this.log = opts.log?.child({ component: 'runtime' });
    this.spawner = new Spawner(this.log);
    this.runc = new Runc(opts.runcPath ?? '/usr/sbin/runc', opts.runcRoot, this.spawner.exec);
    this.conmonPath = opts.conmonPath ?? '/usr/bin/conmon';
    for (const d of [this.layout.bundles, this.layout.exits, this.layout.sockets, opts.runcRoot]) mkdirSync(d, { recursive: true, mode: 0o700 });
    this.exits = new ExitWatcher(this.layout.exits, this.log);
    if (opts.logSizeMax) {
      this.rotator = new LogRotator(opts.logMaxFiles ?? 1, this.log);
      this.trackRunningLogs().catch((err) => this.log?.warn({ err }, 'cannot find the logs of running containers; they are not rotated'));
    }
  }

  /** Containers an earlier daemon started: their conmon's command line names the log. */
  private async trackRunningLogs(): Promise<void> {
    for (const id of (await fs.readdir(this.layout.bundles).catch(() => [] as string[])).filter(isId)) {
      const pid = await this.conmonPid(id);
      const argv = pid ? (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0') : [];
      const log = argv[argv.indexOf('-l') + 1];
      if (argv.includes('-l') && log?.startsWith('k8s-file:')) this.rotator!.track(id, log.slice('k8s-file:'.length));
    }
  }

  /**
   * The container's user, resolved against its image's /etc/passwd and /etc/group as they are
   * before the container runs. The layers never change, so that is known per image and user: the
   * first container of each mounts its rootfs on the host for a moment to read them.
   */
  private userOf(cfg: ContainerConfig): Promise<ExecUser> {
    const key = [cfg.user, ...cfg.layers].join('\0');
    let user = this.users.get(key);
    if (!user) {
      const bundle = this.layout.bundle(cfg.id);
      user = mountRootfs(this.spawner.exec, bundle, cfg.layers.length).then(() =>
        resolveUser(this.layout.rootfs(cfg.id), cfg.user).finally(() => unmountRootfs(this.spawner.exec, bundle)),
      );
      this.users.set(key, user);
      if (this.users.size > USERS_KEPT) this.users.delete(this.users.keys().next().value!);
      user.catch(() => this.users.delete(key));
    }
    return user;
  }

  /**
   * Lays out the rootfs, writes the bundle and has conmon run `runc create`. The container is then
   * "created": its process waits for start(). On failure nothing is left behind and the error
   * carries runc's own message.
   */
  async create(cfg: ContainerConfig): Promise<void> {
    checkId(cfg.id);
    if (!cfg.args.length || !cfg.args[0]) throw invalidArgument(`container ${cfg.id} has no command to run`);
    if (!cfg.hostname) throw invalidArgument(`container ${cfg.id} has no hostname`);
    for (const [k, v] of [['memoryBytes', cfg.memoryBytes], ['nanoCpus', cfg.nanoCpus], ['pids', cfg.pids]] as const) {
      if (!Number.isSafeInteger(v) || v < 0) throw invalidArgument(`container ${cfg.id}: ${k} must be a non-negative integer`);
    }
    if (cfg.nanoCpus > 0 && cfg.nanoCpus < 10_000_000) throw invalidArgument(`container ${cfg.id}: a CPU limit below 0.01 CPU is not supported`);
    if (cfg.memoryBytes > 0 && cfg.memoryBytes < 6 * 1024 * 1024) throw invalidArgument(`container ${cfg.id}: a memory limit below 6 MiB is not supported`);
    if (!path.isAbsolute(cfg.logPath)) throw invalidArgument(`container ${cfg.id}: log path "${cfg.logPath}" must be absolute`);
    if (this.creating.has(cfg.id) || (await this.runc.exists(cfg.id))) throw alreadyExists(`container ${cfg.id} already exists`);

    const bundle = this.layout.bundle(cfg.id);
    try {
      await fs.mkdir(bundle, { mode: 0o700 }); // also the lock against a concurrent create of the same id
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw alreadyExists(`container ${cfg.id} already exists`);
      throw e;
    }
    this.creating.add(cfg.id);
    const t0 = performance.now();
    try {
      this.exits.forget(cfg.id);
      await fs.rm(this.layout.exitFile(cfg.id), { force: true });
      const root = await prepareRootfs(bundle, cfg.layers);
      const user = await this.userOf(cfg);
      const spec = buildSpec({ cfg, user, root, bundle, cgroupsPath: `/${this.opts.cgroupParent}/${cfg.id}` });
      await Promise.all([
        fs.writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec)),
        fs.writeFile(path.join(bundle, 'hostname'), `${cfg.hostname}\n`),
        fs.writeFile(path.join(bundle, 'hosts'), hostsFile(cfg.hostname, cfg.ip)),
        cfg.resolvConf !== undefined
          ? fs.writeFile(path.join(bundle, 'resolv.conf'), cfg.resolvConf)
          : fs.copyFile('/etc/resolv.conf', path.join(bundle, 'resolv.conf')).catch(() => fs.writeFile(path.join(bundle, 'resolv.conf'), '')),
        fs.mkdir(path.dirname(cfg.logPath), { recursive: true }),
      ]);
      this.rotator?.prepare(cfg.logPath);
      const pid = await spawnConmon(this.spawner, {
        conmonPath: this.conmonPath,
        runcPath: this.runc.runcPath,
        runtimeArgs: this.runc.globalArgs(),
        id: cfg.id,
        bundle,
        exitDir: this.layout.exits,
        socketDir: this.layout.sockets,
        logPath: cfg.logPath,
        logSizeMax: this.opts.logSizeMax,
        conmonPidFile: this.layout.conmonPidFile(cfg.id),
        containerPidFile: path.join(bundle, 'pidfile'),
      });
      this.rotator?.track(cfg.id, cfg.logPath);
      this.log?.debug({ id: cfg.id, pid, ms: Math.round(performance.now() - t0) }, 'container created');
    } catch (e) {
      this.creating.delete(cfg.id);
      // A daemon that is stopping leaves the container as it is: the next one finds it created, or
      // half-made, and carries on. Cleaning up now would SIGKILL a created container's init, which
      // the next daemon would read as the task's own exit (137).
      if (this.closed) throw e;
      await this.cleanup(cfg.id).catch((ce) => this.log?.warn({ err: ce, id: cfg.id }, 'cleanup after a failed create failed'));
      if (e instanceof ShoalError) throw e;
      if (isNoSpace(e)) throw await diskFullError(this.opts.root);
      throw internal(`cannot create container ${cfg.id}: ${(e as Error).message}`);
    }
    this.creating.delete(cfg.id);
  }

  /** Lets the created container's process exec the command (see Runc.start). */
  async start(id: string): Promise<{ pid: number }> {
    checkId(id);
    const st = await this.runc.state(id);
    if (!st) throw notFound(`container ${id} does not exist`);
    if (st.status !== 'created') throw failedPrecondition(`container ${id} cannot be started: it is ${st.status}`);
    await this.runc.start(id, st.pid);
    return { pid: st.pid };
  }

  async state(id: string): Promise<ContainerState | null> {
    checkId(id);
    if (this.creating.has(id)) return { id, status: 'creating', pid: 0, exitCode: null };
    const [rs, exitCode, bundle] = await Promise.all([
      this.runc.state(id),
      readExitFile(this.layout.exitFile(id)),
      fs.stat(this.layout.bundle(id)).then(
        () => true,
        () => false,
      ),
    ]);
    if (exitCode !== null) return { id, status: 'stopped', pid: 0, exitCode };
    if (rs) return { id, status: rs.status, pid: rs.pid, exitCode: null };
    if (bundle) return { id, status: 'unknown', pid: 0, exitCode: null };
    return null;
  }

  /** Every container this runtime's dirs know of: bundles, runc state and exit files. */
  async list(): Promise<ContainerState[]> {
    const [bundles, runcIds, exits] = await Promise.all([
      fs.readdir(this.layout.bundles).catch(() => [] as string[]),
      this.runc.ids(),
      fs.readdir(this.layout.exits).catch(() => [] as string[]),
    ]);
    const ids = [...new Set([...bundles, ...runcIds, ...exits, ...this.creating])].filter(isId).sort();
    const states = await Promise.all(ids.map((id) => this.state(id)));
    return states.filter((s): s is ContainerState => s !== null);
  }

  /**
   * Calls cb(id, exitCode) once per container exit, including exits that happened before this
   * Runtime existed and are still on disk. Returns the unsubscribe function.
   */
  onExit(cb: (id: string, exitCode: number) => void): () => void {
    return this.exits.subscribe(cb);
  }

  /**
   * Sends `signal` to the container's init process, waits up to graceMs for it to exit, then
   * SIGKILLs it. Resolves once it has exited (and conmon has recorded the exit code, unless conmon
   * itself is gone). A container that has already stopped is not an error.
   */
  async stop(id: string, signal = 'SIGTERM', graceMs = 10_000): Promise<void> {
    checkId(id);
    const sig = parseSignal(signal);
    const st = await this.state(id);
    if (!st) throw notFound(`container ${id} does not exist`);
    if (st.status === 'stopped' || st.status === 'unknown') return;
    const send = async (s: NodeJS.Signals | number) => {
      const rs = await this.runc.state(id);
      if (!rs || rs.status === 'stopped') return;
      try {
        process.kill(rs.pid, s);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw internal(`cannot signal container ${id}: ${(e as Error).message}`);
      }
    };
    await send(sig);
    if (await this.waitExit(id, graceMs)) return;
    this.log?.info({ id, signal, graceMs }, 'container did not stop in time; killing it');
    await send('SIGKILL');
    if (!(await this.waitExit(id, 10_000))) throw internal(`container ${id} did not exit after SIGKILL`);
  }

  /** True once the container's process is gone and conmon has written its exit file (or conmon is gone too). */
  private async waitExit(id: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    let goneAt = 0;
    for (let delay = 5; ; delay = Math.min(delay * 2, 50)) {
      if ((await readExitFile(this.layout.exitFile(id))) !== null) return true;
      const rs = await this.runc.state(id);
      if (!rs || rs.status === 'stopped') {
        goneAt ||= Date.now();
        // conmon writes the exit file right after reaping; give it a moment unless it is dead
        if (!(await this.conmonAlive(id)) || Date.now() - goneAt > 2000) return true;
      }
      if (Date.now() >= deadline) return goneAt > 0;
      await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
    }
  }

  private async conmonPid(id: string): Promise<number> {
    const pid = Number((await fs.readFile(this.layout.conmonPidFile(id), 'utf8').catch(() => '')).trim());
    if (!(pid > 0)) return 0;
    // make sure the pid was not reused: conmon's command line names this container
    const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    return cmdline.includes(`\0${id}\0`) && cmdline.includes('conmon') && (await processStart(pid)) !== null ? pid : 0;
  }

  /**
   * Waits until the container's conmon, if one runs, is past `runc create`: the container's pid
   * file is there, or conmon is gone. Killing conmon mid-way would leave runc's init process
   * behind in the cgroup, unknown to runc. Looks in /proc when conmon has not written its pid file.
   */
  private async settleConmon(id: string, timeoutMs = 60_000): Promise<void> {
    const pidFile = path.join(this.layout.bundle(id), 'pidfile');
    const deadline = Date.now() + timeoutMs;
    let misses = 0;
    for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
      const pid = (await this.conmonPid(id)) || (await findConmon(id));
      if (await fs.stat(pidFile).then(() => true, () => false)) return;
      // A conmon that forks can slip through one scan (its parent gone before its command line was
      // read, its child born after /proc was listed); the child is in the next listing.
      misses = pid ? 0 : misses + 1;
      if (misses === 2) return;
      if (Date.now() > deadline) {
        try {
          if (pid) process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
        return;
      }
      await sleep(delay);
    }
  }

  private async conmonAlive(id: string): Promise<boolean> {
    return (await this.conmonPid(id)) > 0;
  }

  /**
   * Kills and deletes the container (runc delete --force), lets conmon finish, unmounts the
   * rootfs and removes the bundle, upper dir, exit file and cgroups. Idempotent; the log stays.
   */
  async remove(id: string): Promise<void> {
    checkId(id);
    const pending = this.removing.get(id);
    if (pending) return pending;
    const p = this.cleanup(id).finally(() => this.removing.delete(id));
    this.removing.set(id, p);
    return p;
  }

  private async cleanup(id: string): Promise<void> {
    if (this.closed) throw internal(`cannot remove container ${id}: the runtime was closed`);
    // conmon may still be running `runc create` (a create that failed as the process spawner died,
    // or one a stopped daemon left): let that finish first, so that no container appears after
    // the cleanup has looked
    await this.settleConmon(id);
    const rs = await this.runc.state(id);
    if (rs && rs.status !== 'stopped') {
      // kill it ourselves first: `runc delete --force` sleeps 100 ms before it looks again
      try {
        process.kill(rs.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      for (let i = 0; i < 200 && (await processStart(rs.pid)) !== null; i++) await sleep(i < 20 ? 2 : 10);
    }
    if (rs || (await this.runc.exists(id))) await this.runc.delete(id);
    // conmon exits right after the container; wait briefly so it cannot write the exit file after we remove it
    for (let i = 0; i < 100; i++) {
      const pid = await this.conmonPid(id);
      if (!pid) break;
      if (i === 60) process.kill(pid, 'SIGKILL');
      await sleep(i < 10 ? 5 : 20);
    }
    this.rotator?.untrack(id);
    const bundle = this.layout.bundle(id);
    await unmountRootfs(this.spawner.exec, bundle);
    await Promise.all([
      fs.rm(bundle, { recursive: true, force: true }),
      fs.rm(this.layout.exitFile(id), { force: true }),
      fs.rm(path.join(this.layout.sockets, id), { force: true }),
    ]);
    const left = await removeContainerCgroups(this.opts.cgroupParent, id, rs?.cgroupPaths ?? []);
    if (left.length) throw internal(`cannot remove the cgroups of container ${id}: ${left.join(', ')} still busy`);
    this.exits.forget(id);
    this.log?.debug({ id }, 'container removed');
  }

  /** Removes every container this runtime knows and the cgroup parent dirs (tests, node teardown). */
  async removeAll(): Promise<void> {
    const [bundles, runcIds, exits, socks, mounted] = await Promise.all([
      fs.readdir(this.layout.bundles).catch(() => [] as string[]),
      this.runc.ids(),
      fs.readdir(this.layout.exits).catch(() => [] as string[]),
      fs.readdir(this.layout.sockets).catch(() => [] as string[]),
      mountPoints(),
    ]);
    const ids = [...new Set([...bundles, ...runcIds, ...exits, ...socks])].filter(isId);
    // mounts under the bundles dir whose id we might not have listed (a half-made bundle)
    for (const mp of mounted) {
      const rel = path.relative(this.layout.bundles, mp);
      const m = /^([^/]+)\/rootfs$/.exec(rel);
      if (m && isId(m[1]) && !ids.includes(m[1])) ids.push(m[1]);
    }
    const errors: string[] = [];
    const queue = [...ids];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let id = queue.shift(); id; id = queue.shift()) {
          await this.remove(id).catch((e: Error) => errors.push(e.message));
        }
      }),
    );
    await removeCgroupParent(this.opts.cgroupParent);
    if (errors.length) throw internal(`cannot remove every container: ${errors.join('; ')}`);
  }

  /** Stops watching the exit dir and ends the process spawner. Containers keep running. */
  close(): void {
    this.closed = true;
    this.exits.close();
    this.rotator?.close();
    this.spawner.close();
  }

  /** The pid of the helper process that forks runc, conmon and mount for this runtime, while it runs (tests). */
  get spawnerPid(): number | undefined {
    return this.spawner.pid;
  }

  /** Whether the kernel killed a process of the container for lack of memory; known until remove(). */
  async oomKilled(id: string): Promise<boolean> {
    checkId(id);
    return (await oomKills(this.opts.cgroupParent, id)) > 0;
  }

  /**
   * Runs argv inside the running container (`runc exec`). Once it has run for timeoutMs, it and
   * every process it started are killed with SIGKILL, found from runc's pid file: a signal to runc
   * would only be passed on, a probe that traps it would run on, and its children would linger in
   * the container holding the output pipes open.
   */
  async exec(id: string, argv: string[], timeoutMs: number): Promise<ExecOutcome> {
    checkId(id);
    if (!argv.length || !argv[0]) throw invalidArgument(`nothing to run in container ${id}`);
    const pidFile = path.join(this.layout.bundle(id), `exec-${randomBytes(6).toString('hex')}.pid`);
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    let ended = false;
    const kill = async () => {
      timedOut = true;
      const pid = Number((await fs.readFile(pidFile, 'utf8').catch(() => '')).trim());
      // It may have ended and its pid gone to another process: only one in this container is ours.
      const cgroups = pid > 0 ? await fs.readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '') : '';
      for (const p of cgroups.includes(`/${this.opts.cgroupParent}/${id}\n`) ? await processTree(pid) : []) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // it has just ended
        }
      }
      // runc may not have started it yet, or be about to report its end: look again shortly
      if (!ended) timer = setTimeout(() => void kill(), 100);
    };
    timer = setTimeout(() => void kill(), timeoutMs);
    try {
      const r = await this.runc.exec(id, argv, pidFile, timeoutMs + EXEC_KILL_GRACE_MS);
      return { exitCode: r.code, output: [r.stdout.trim(), r.message].filter(Boolean).join('\n'), timedOut };
    } finally {
      ended = true;
      clearTimeout(timer);
      await fs.rm(pidFile, { force: true });
    }
  }

  /** The cgroup dir of a container for one controller, e.g. ("memory", id): in its v1 hierarchy, or in the unified one on a v2 host. */
  async cgroupDir(controller: string, id: string): Promise<string> {
    const dir = await hostControllerDir(controller, `/${this.opts.cgroupParent}/${id}`);
    if (!dir) throw failedPrecondition(`no cgroup hierarchy of this host has the ${controller} controller`);
    return dir;
  }
}

/** Users resolved and kept (see userOf): one for each image and user a node runs, in practice. */
const USERS_KEPT = 256;

/** How long after an exec's timeout runc itself is killed, if killing what it ran did not end it. */
const EXEC_KILL_GRACE_MS = 1000;

/** pid and every process below it, as /proc lists each thread's children; gone ones are left out. */
async function processTree(pid: number): Promise<number[]> {
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const tid of await fs.readdir(`/proc/${tree[i]}/task`).catch(() => [] as string[])) {
      const children = await fs.readFile(`/proc/${tree[i]}/task/${tid}/children`, 'utf8').catch(() => '');
      tree.push(...children.split(' ').filter(Boolean).map(Number));
    }
  }
  return tree;
}

/** A process whose command line names conmon and `-c <id>`; 0 if none. */
async function findConmon(id: string): Promise<number> {
  const pids = (await fs.readdir('/proc').catch(() => [] as string[])).filter((p) => /^[0-9]+$/.test(p));
  for (const p of pids) {
    const cmdline = await fs.readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(`\0-c\0${id}\0`) && cmdline.includes('conmon')) return Number(p);
  }
  return 0;
}

/** Accepts "SIGTERM", "TERM", "sigterm" or "15". */
export function parseSignal(s: string): NodeJS.Signals | number {
  const t = s.trim().toUpperCase();
  if (/^[0-9]+$/.test(t)) {
    const n = Number(t);
    if (n >= 1 && n <= 64) return n;
  } else {
    const name = (t.startsWith('SIG') ? t : `SIG${t}`) as NodeJS.Signals;
    if (name in osConstants.signals) return name;
  }
  throw invalidArgument(`invalid stop signal "${s}"`);
}
