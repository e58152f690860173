import type { Task__Output } from '../gen/shoal/v1/Task';
import type { Platform__Output } from '../gen/shoal/v1/Platform';
import { NodeState } from '../gen/shoal/v1/NodeState';
import { constraintMatches, parseConstraint, type Constraint } from './constraints';
import type { NodeInfo } from './node-info';
import { platformMatches } from './platform';
import { hostPortsOf } from './host-ports';

/** One feasibility rule. `explain` is what the user reads when no node is left. */
export interface Filter {
  name: string;
  /** Depends on what is placed on the node, so it is checked again after each placement there. */
  dynamic?: boolean;
  check(task: Task__Output, node: NodeInfo): boolean;
  explain(nodesFailed: number): string;
}

const nodes = (n: number): string => (n === 1 ? '1 node' : `${n} nodes`);

export const readyFilter: Filter = {
  name: 'ready',
  check: (_task, info) => info.node.status?.state === NodeState.NODE_READY,
  explain: (n) => `${nodes(n)} not ready`,
};

export const availabilityFilter: Filter = {
  name: 'availability',
  check: (_task, info) => info.node.spec?.availability === 'active',
  explain: (n) => `${nodes(n)} paused or drained`,
};

export function platformFilter(platforms: Platform__Output[]): Filter {
  return {
    name: 'platform',
    check: (_task, info) => platformMatches(platforms, info.node),
    explain: (n) => `unsupported platform on ${nodes(n)}`,
  };
}

// A limit the node cannot give even when idle can never be met there, so it is a placement
// question rather than a runtime failure.
export const cpuLimitFilter: Filter = {
  name: 'cpu-limit',
  check: (task, info) => (task.spec?.resources?.limits?.nano_cpus ?? 0) <= info.cpus,
  explain: (n) => `cpu limit exceeds the cpus of ${nodes(n)}`,
};

export const cpuFilter: Filter = {
  name: 'cpu',
  dynamic: true,
  check: (task, info) => (task.spec?.resources?.reservations?.nano_cpus ?? 0) <= info.freeCpus,
  explain: (n) => `insufficient cpu on ${nodes(n)}`,
};

export const memoryFilter: Filter = {
  name: 'memory',
  dynamic: true,
  check: (task, info) => (task.spec?.resources?.reservations?.memory_bytes ?? 0) <= info.freeMemory,
  explain: (n) => `insufficient memory on ${nodes(n)}`,
};

export const maxReplicasFilter: Filter = {
  name: 'max-replicas',
  dynamic: true,
  check: (task, info) => {
    const max = task.spec?.placement?.max_replicas ?? 0;
    return max === 0 || info.tasksOf(task.service_id) < max;
  },
  explain: (n) => `max replicas per node reached on ${nodes(n)}`,
};

// One filter per host port, so the explanation can name the port that is taken.
export function hostPortFilter(port: string): Filter {
  return {
    name: `host port ${port}`,
    dynamic: true,
    check: (_task, info) => !info.hostPortInUse(port),
    explain: (n) => `host port ${port} in use on ${nodes(n)}`,
  };
}

// One filter per constraint, so the explanation can name the constraint that failed.
export function constraintFilter(c: Constraint): Filter {
  return {
    name: `constraint ${c.text}`,
    check: (_task, info) => constraintMatches(c, info.node),
    explain: (n) => `constraint ${c.text} not satisfied on ${nodes(n)}`,
  };
}

/**
 * The filters a task must pass, cheapest and static first: a node excluded by a constraint is
 * then reported as such, not as short of memory. Rules the task does not use are left out.
 * Throws invalidArgument on a bad constraint.
 */
export function pipelineFor(task: Task__Output): Filter[] {
  const placement = task.spec?.placement;
  const platforms = placement?.platforms ?? [];
  const constraints = (placement?.constraints ?? []).map((text) => constraintFilter(parseConstraint(text)));
  return [
    readyFilter,
    availabilityFilter,
    ...(platforms.length ? [platformFilter(platforms)] : []),
    ...constraints,
    ...(task.spec?.resources?.limits?.nano_cpus ? [cpuLimitFilter] : []),
    cpuFilter,
    memoryFilter,
    maxReplicasFilter,
    ...hostPortsOf(task.endpoint).map(hostPortFilter),
  ];
}
