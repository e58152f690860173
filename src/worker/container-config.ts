import type { Task__Output } from '../gen/shoal/v1/Task';
import type { ContainerConfig } from './runtime/runtime';
import type { ResolvedImage } from '../images/store';

/**
 * Merges a task's container spec over its image's config, as Docker does: the spec's command
 * replaces the image entrypoint, its args replace the image cmd, its env overrides by key.
 */
export function containerConfig(task: Task__Output, image: ResolvedImage, logPath: string): ContainerConfig {
  const c = task.spec!.container!;
  const limits = task.spec!.resources?.limits;
  const entrypoint = c.command.length ? c.command : image.config.entrypoint;
  const cmd = c.args.length || c.command.length ? c.args : image.config.cmd;
  return {
    id: task.id,
    hostname: c.hostname || task.id.slice(0, 12),
    args: [...entrypoint, ...cmd],
    env: mergeEnv(image.config.env, c.env),
    cwd: c.dir || image.config.workingDir || '/',
    user: c.user || image.config.user,
    layers: image.layers,
    memoryBytes: limits?.memory_bytes ?? 0,
    nanoCpus: limits?.nano_cpus ?? 0,
    pids: limits?.pids ?? 0,
    logPath,
    seccompProfile: c.seccomp_profile,
    labels: { 'shoal.task.id': task.id, 'shoal.service.id': task.service_id, 'shoal.service.name': task.service_name, ...c.labels },
  };
}

function mergeEnv(base: string[], overrides: string[]): string[] {
  const env = new Map<string, string>();
  for (const e of [...base, ...overrides]) env.set(e.split('=', 1)[0], e);
  return [...env.values()];
}

/** The signal and grace period to stop a task with: the spec's, else the image's, else SIGTERM / 10 s. */
export function stopPolicy(task: Task__Output, image: ResolvedImage | null): { signal: string; graceMs: number } {
  const c = task.spec!.container!;
  return { signal: c.stop_signal || image?.config.stopSignal || 'SIGTERM', graceMs: c.stop_grace_period_ms ?? 10_000 };
}
