import type { Node__Output } from '../../src/gen/shoal/v1/Node';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import type { TaskSpec__Output } from '../../src/gen/shoal/v1/TaskSpec';
import type { NodeState__Output } from '../../src/gen/shoal/v1/NodeState';
import type { TaskState__Output } from '../../src/gen/shoal/v1/TaskState';

export interface NodeOpts {
  state?: NodeState__Output;
  availability?: string;
  role?: string;
  hostname?: string;
  labels?: Record<string, string>;
  os?: string;
  arch?: string;
  cpus?: number;
  memory?: number;
}

export function node(id: string, o: NodeOpts = {}): Node__Output {
  return {
    id,
    version: 1,
    spec: { role: o.role ?? 'worker', availability: o.availability ?? 'active', labels: o.labels ?? {} },
    description: {
      hostname: o.hostname ?? `host-${id}`,
      platform: { os: o.os ?? 'linux', architecture: o.arch ?? 'amd64' },
      resources: { nano_cpus: o.cpus ?? 4e9, memory_bytes: o.memory ?? 8 * 2 ** 30, pids: 0 },
      engine_version: '',
    },
    status: { state: o.state ?? 'NODE_READY', message: '', addr: '', heartbeat_at: '' },
    manager_status: null,
    created_at: '',
  };
}

export interface TaskOpts {
  service?: string;
  specVersion?: number;
  slot?: number;
  node?: string;
  state?: TaskState__Output;
  cpus?: number;
  memory?: number;
  constraints?: string[];
  maxReplicas?: number;
  /** Spread label names, e.g. ['zone'] for spread=node.labels.zone. */
  spread?: string[];
  platforms?: { os?: string; architecture?: string }[];
  limitCpus?: number;
  desired?: TaskState__Output;
}

export function task(id: string, o: TaskOpts = {}): Task__Output {
  const spec: TaskSpec__Output = {
    container: null,
    resources: {
      limits: { nano_cpus: o.limitCpus ?? 0, memory_bytes: 0, pids: 0 },
      reservations: { nano_cpus: o.cpus ?? 0, memory_bytes: o.memory ?? 0, pids: 0 },
    },
    restart_policy: null,
    networks: [],
    placement: {
      constraints: o.constraints ?? [],
      max_replicas: o.maxReplicas ?? 0,
      preferences: (o.spread ?? []).map((label) => ({ spread: `node.labels.${label}` })),
      platforms: (o.platforms ?? []).map((p) => ({ os: p.os ?? '', architecture: p.architecture ?? '' })),
    },
  };
  return {
    id,
    version: 1,
    service_id: o.service ?? 'svc',
    service_name: o.service ?? 'svc',
    slot: o.slot ?? 0,
    node_id: o.node ?? '',
    spec_version: o.specVersion ?? 1,
    spec,
    desired_state: o.desired ?? 'RUNNING',
    status: { state: o.state ?? (o.node ? 'RUNNING' : 'PENDING'), timestamp: '', message: '', err: '', container: null, health: '' },
    created_at: '2024-01-01T00:00:00.000Z',
    start_after: '',
    schedule_error: '',
    restart_times: [],
    endpoint: null,
  };
}

/** n pending tasks of one service, slots 1..n. */
export function tasks(n: number, o: TaskOpts = {}, prefix = o.service ?? 't'): Task__Output[] {
  return Array.from({ length: n }, (_, i) => task(`${prefix}-${i + 1}`, { ...o, slot: i + 1 }));
}

export const MiB = 2 ** 20;
export const GiB = 2 ** 30;
