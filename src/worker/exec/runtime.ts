import type { ContainerConfig, ContainerState, ExecOutcome } from '../runtime/types';

export type { ContainerConfig, ContainerState, ContainerStatus, ExecOutcome } from '../runtime/types';

/**
 * What the executor needs of a container runtime: the runc-under-conmon Runtime in the daemon,
 * an in-memory one in tests. Containers are named by their task id.
 */
export interface ContainerRuntime {
  /** Makes the container ready to start (rootfs, bundle, `runc create`); nothing is left on failure. */
  create(config: ContainerConfig): Promise<void>;
  /** Runs a created container's command. */
  start(id: string): Promise<{ pid: number }>;
  /** null when no trace of the container is left. */
  state(id: string): Promise<ContainerState | null>;
  /** Sends the signal, waits up to graceMs for an exit, then kills; resolves once it has exited. */
  stop(id: string, signal: string, graceMs: number): Promise<void>;
  /** Kills and deletes the container; idempotent. Its log stays. */
  remove(id: string): Promise<void>;
  /** Every container, including those an earlier daemon left. */
  list(): Promise<ContainerState[]>;
  /** cb once per exit, including exits that happened while nobody listened; returns the unsubscribe. */
  onExit(cb: (id: string, exitCode: number) => void): () => void;
  /** Whether the kernel killed a process of the container for lack of memory; known until remove(). */
  oomKilled(id: string): Promise<boolean>;
  /**
   * Runs argv inside the running container, in its namespaces and cgroups and as its own process
   * runs (user, env, working dir, capabilities, seccomp), as `runc exec` does; kills it once it
   * has run for timeoutMs.
   */
  exec(id: string, argv: string[], timeoutMs: number): Promise<ExecOutcome>;
}
