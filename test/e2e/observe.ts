import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from '../../src/cli/client';
import type { LogLine__Output } from '../../src/gen/shoal/v1/LogLine';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import type { TestNode } from '../helpers/test-node';

/**
 * Polls `probe` until it returns something other than undefined, null or false, and returns
 * that; throws, naming what it waited for and the last value seen, when `timeoutMs` passes.
 */
export async function waitFor<T>(what: string, probe: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      last = await probe();
      if (last !== undefined && last !== null && last !== false) return last as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const clients = new WeakMap<TestNode, Client>();

/**
 * The node's control API in this process: what tests observe through it is what the CLI shows,
 * without starting a CLI process for every poll. What a test does to the node goes through the CLI.
 */
export function apiOf(node: TestNode): Client {
  let c = clients.get(node);
  if (!c) clients.set(node, (c = new Client(node.socket)));
  return c;
}

export function closeApi(node: TestNode): void {
  clients.get(node)?.close();
  clients.delete(node);
}

/** Every task of a service, newest first within a slot, as `service ps` lists them. */
export const tasksOf = async (node: TestNode, service: string): Promise<Task__Output[]> => (await apiOf(node).listTasks({ service })).tasks;

/** Tasks of the service that are meant to run and do. */
export const runningOf = async (node: TestNode, service: string): Promise<Task__Output[]> =>
  (await tasksOf(node, service)).filter((t) => t.desired_state === 'RUNNING' && t.status!.state === 'RUNNING');

/** Tasks of the service that are meant to run, do, and have passed their health check. */
export const healthyOf = async (node: TestNode, service: string): Promise<Task__Output[]> =>
  (await runningOf(node, service)).filter((t) => t.status!.health === 'healthy');

/** Everything the service's tasks logged so far, as `service logs` sends it. */
export function logsOf(node: TestNode, service: string, tail = -1): Promise<LogLine__Output[]> {
  return new Promise((resolve, reject) => {
    const lines: LogLine__Output[] = [];
    const call = apiOf(node).control.ServiceLogs({ service, follow: false, tail });
    call.on('data', (l: LogLine__Output) => lines.push(l));
    call.on('error', reject);
    call.on('end', () => resolve(lines));
  });
}

/** The lines one task wrote. */
export const taskLines = async (node: TestNode, service: string, taskId: string): Promise<string[]> =>
  (await logsOf(node, service)).filter((l) => l.task_id === taskId).map((l) => l.line);

/** Waits until a running task of the service other than `previous` has logged a line matching `line`. */
export async function nextTaskLogging(node: TestNode, service: string, line: RegExp, previous?: string): Promise<Task__Output> {
  return waitFor(`a new running task of ${service} logging ${line}`, async () => {
    const lines = await logsOf(node, service);
    return (await runningOf(node, service)).find((t) => t.id !== previous && lines.some((l) => l.task_id === t.id && line.test(l.line)));
  });
}

export interface CgroupLimits {
  /** Bytes, or null when unlimited. */
  memory: number | null;
  /** CFS quota as a fraction of one CPU, or null when unlimited. */
  cpus: number | null;
  pids: number | null;
}

/**
 * The limits the kernel applies to a process, read through its own /proc/<pid>/cgroup so it works
 * whatever the cgroup parent is, on v1 (hybrid) and v2 (unified) hosts.
 */
export function cgroupLimits(pid: number): CgroupLimits {
  const lines = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n').map((l) => l.split(':'));
  const v1 = (controller: string, file: string): string => {
    const line = lines.find(([, controllers]) => controllers.split(',').includes(controller));
    if (!line) throw new Error(`process ${pid} has no ${controller} cgroup`);
    return fs.readFileSync(path.join('/sys/fs/cgroup', line[1], line[2], file), 'utf8').trim();
  };
  const unified = lines.find(([id, controllers]) => id === '0' && controllers === '');
  const isV2 = fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
  if (isV2 && unified) {
    const read = (file: string) => fs.readFileSync(path.join('/sys/fs/cgroup', unified[2], file), 'utf8').trim();
    const [quota, period] = read('cpu.max').split(' ');
    return {
      memory: read('memory.max') === 'max' ? null : Number(read('memory.max')),
      cpus: quota === 'max' ? null : Number(quota) / Number(period),
      pids: read('pids.max') === 'max' ? null : Number(read('pids.max')),
    };
  }
  const memory = Number(v1('memory', 'memory.limit_in_bytes'));
  const quota = Number(v1('cpu', 'cpu.cfs_quota_us'));
  const pids = v1('pids', 'pids.max');
  return {
    // v1 says "no limit" with the largest page-aligned int64.
    memory: memory >= 2 ** 62 ? null : memory,
    cpus: quota < 0 ? null : quota / Number(v1('cpu', 'cpu.cfs_period_us')),
    pids: pids === 'max' ? null : Number(pids),
  };
}
