import { constants } from 'node:os';
import type { ImageConfig, ResolvedImage } from '../../src/images/store';
import type { RegistryClient } from '../../src/images/registry/client';
import type { ContainerConfig, ContainerRuntime, ContainerState, ContainerStatus, ExecOutcome } from '../../src/worker/exec/runtime';
import type { ImageSource } from '../../src/worker/exec/task-controller';

/**
 * A ContainerRuntime of plain records: nothing runs. A test ends a container's process with
 * exit(); stop() ends it as its signal would (128 + the signal's number). `calls` lists every
 * call that changes something, e.g. "stop t0001 SIGINT 3000".
 */
export class FakeRuntime implements ContainerRuntime {
  readonly calls: string[] = [];
  readonly configs = new Map<string, ContainerConfig>();
  /** Set to make create fail, as runc does for a command the image lacks. */
  createError: Error | undefined;
  /** While set, creates wait for it: lets a test hold them in flight. */
  gate: Promise<void> | undefined;
  /** What exec() (a health check) answers, per container; a container not named here passes. */
  readonly execOutcomes = new Map<string, ExecOutcome | Error>();
  /** Every exec, as "<id> <argv…>" (they change nothing, so they are not in `calls`). */
  readonly execs: string[] = [];
  /** The most creates that were in flight at once. */
  maxCreating = 0;
  private creating = 0;
  private nextPid = 1000;
  private readonly states = new Map<string, ContainerState>();
  private readonly listeners = new Set<(id: string, exitCode: number) => void>();
  private readonly oomKills = new Set<string>();

  /** A container found on the node, as an earlier daemon left it. */
  add(id: string, status: ContainerStatus, exitCode: number | null = null): void {
    this.states.set(id, { id, status, pid: status === 'running' ? this.nextPid++ : 0, exitCode });
  }

  ids(): string[] {
    return [...this.states.keys()].sort();
  }

  async create(config: ContainerConfig): Promise<void> {
    this.calls.push(`create ${config.id}`);
    if (this.states.has(config.id)) throw new Error(`container ${config.id} already exists`);
    this.creating++;
    this.maxCreating = Math.max(this.maxCreating, this.creating);
    try {
      await this.gate;
      if (this.createError) throw this.createError;
    } finally {
      this.creating--;
    }
    this.configs.set(config.id, config);
    this.states.set(config.id, { id: config.id, status: 'created', pid: this.nextPid++, exitCode: null });
  }

  async start(id: string): Promise<{ pid: number }> {
    this.calls.push(`start ${id}`);
    const s = this.states.get(id);
    if (s?.status !== 'created') throw new Error(`container ${id} cannot be started: it is ${s?.status ?? 'missing'}`);
    s.status = 'running';
    return { pid: s.pid };
  }

  async state(id: string): Promise<ContainerState | null> {
    const s = this.states.get(id);
    return s ? { ...s } : null;
  }

  async stop(id: string, signal: string, graceMs: number): Promise<void> {
    this.calls.push(`stop ${id} ${signal} ${graceMs}`);
    const s = this.states.get(id);
    if (!s) throw new Error(`container ${id} does not exist`);
    if (s.status === 'running' || s.status === 'created') this.exit(id, 128 + (constants.signals[signal as NodeJS.Signals] ?? 15));
  }

  async remove(id: string): Promise<void> {
    this.calls.push(`remove ${id}`);
    this.states.delete(id);
    this.configs.delete(id);
    this.oomKills.delete(id);
  }

  async list(): Promise<ContainerState[]> {
    return [...this.states.values()].map((s) => ({ ...s }));
  }

  onExit(cb: (id: string, exitCode: number) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  async oomKilled(id: string): Promise<boolean> {
    return this.oomKills.has(id);
  }

  async exec(id: string, argv: string[], _timeoutMs: number): Promise<ExecOutcome> {
    this.execs.push(`${id} ${argv.join(' ')}`);
    if (this.states.get(id)?.status !== 'running') throw new Error(`container ${id} is not running`);
    const outcome = this.execOutcomes.get(id) ?? { exitCode: 0, output: '', timedOut: false };
    if (outcome instanceof Error) throw outcome;
    return outcome;
  }

  /** The container's process ends with this code, and the exit is announced; oomKilled: as the kernel's OOM killer leaves it. */
  exit(id: string, exitCode: number, oomKilled = false): void {
    if (oomKilled) this.oomKills.add(id);
    const s = this.states.get(id);
    if (!s) throw new Error(`container ${id} does not exist`);
    Object.assign(s, { status: 'stopped', pid: 0, exitCode });
    for (const cb of this.listeners) cb(id, exitCode);
  }
}

/** An image as the store would resolve it: one layer, the given config over busybox-like defaults. */
export function resolvedImage(id: string, ref: string, config: Partial<ImageConfig> = {}): ResolvedImage {
  return {
    id,
    digest: `sha256:${'d'.repeat(64)}`,
    tags: [ref],
    sizeBytes: 1024,
    createdAt: '2026-01-01T00:00:00.000Z',
    config: { env: ['PATH=/bin'], entrypoint: [], cmd: ['sh'], workingDir: '', user: '', stopSignal: '', labels: {}, ...config },
    layers: [`/layers/${id.slice(7, 19)}`],
  };
}

/** Images by reference; a pull adds what `registry` holds for the reference, or fails as the registry would. */
export class FakeImages implements ImageSource {
  readonly pulls: string[] = [];
  private readonly local = new Map<string, ResolvedImage>();

  constructor(
    images: ResolvedImage[] = [],
    readonly registry = new Map<string, ResolvedImage>(),
  ) {
    for (const i of images) for (const t of i.tags) this.local.set(t, i);
  }

  async resolve(ref: string): Promise<ResolvedImage | null> {
    return this.local.get(ref) ?? null;
  }

  async pull(ref: string, _registry: RegistryClient): Promise<ResolvedImage> {
    this.pulls.push(ref);
    const image = this.registry.get(ref);
    if (!image) throw new Error(`manifest unknown: ${ref}`);
    this.local.set(ref, image);
    return image;
  }
}

/** Lets every pending promise chain run to its end (fakes resolve at once, so one turn suffices; a few for margin). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}
