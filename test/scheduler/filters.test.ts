import { describe, expect, it } from 'vitest';
import { cpuFilter, cpuLimitFilter, maxReplicasFilter, memoryFilter, pipelineFor } from '../../src/scheduler/filters';
import { NodeInfo } from '../../src/scheduler/node-info';
import { GiB, node, task } from './fixtures';

describe('filters', () => {
  it('see the counters a NodeInfo keeps as tasks are added', () => {
    const info = new NodeInfo(node('a', { cpus: 2e9, memory: 2 * GiB }));
    const t = task('t', { cpus: 1e9, memory: GiB, maxReplicas: 2 });
    info.addTask(t);
    expect([cpuFilter.check(t, info), memoryFilter.check(t, info), maxReplicasFilter.check(t, info)]).toEqual([true, true, true]);
    info.addTask(t);
    expect([cpuFilter.check(t, info), memoryFilter.check(t, info), maxReplicasFilter.check(t, info)]).toEqual([false, false, false]);
    expect(info).toMatchObject({ totalTasks: 2, freeCpus: 0, freeMemory: 0 });
  });

  it('count a task being shut down for its reservations only', () => {
    const info = new NodeInfo(node('a', { memory: 2 * GiB }));
    info.addTask(task('old', { memory: GiB, desired: 'SHUTDOWN' }));
    expect(info).toMatchObject({ totalTasks: 0, freeMemory: GiB });
    expect(info.tasksOf('svc')).toBe(0);
  });

  it('refuse a cpu limit above the node’s cpus, whatever is reserved there', () => {
    const info = new NodeInfo(node('a', { cpus: 2e9 }));
    info.addTask(task('busy', { service: 'other', cpus: 2e9 }));
    expect(cpuLimitFilter.check(task('t', { limitCpus: 2e9 }), info)).toBe(true);
    expect(cpuLimitFilter.check(task('t', { limitCpus: 3e9 }), info)).toBe(false);
  });

  it('explain with the number of nodes that failed', () => {
    expect(memoryFilter.explain(1)).toBe('insufficient memory on 1 node');
    expect(memoryFilter.explain(3)).toBe('insufficient memory on 3 nodes');
    expect(cpuLimitFilter.explain(2)).toBe('cpu limit exceeds the cpus of 2 nodes');
  });

  it('form a pipeline of the rules the task uses, static ones first', () => {
    expect(pipelineFor(task('t', { constraints: ['node.role==manager'] })).map((f) => f.name)).toEqual([
      'ready',
      'availability',
      'constraint node.role==manager',
      'cpu',
      'memory',
      'max-replicas',
    ]);
    const full = task('t', { constraints: ['node.labels.zone!=c'], platforms: [{ os: 'linux' }], limitCpus: 1e9 });
    expect(pipelineFor(full).map((f) => f.name)).toEqual([
      'ready',
      'availability',
      'platform',
      'constraint node.labels.zone!=c',
      'cpu-limit',
      'cpu',
      'memory',
      'max-replicas',
    ]);
  });
});
