import { describe, expect, it } from 'vitest';
import { cpuFilter, maxReplicasFilter, memoryFilter, pipelineFor } from '../../src/scheduler/filters';
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

  it('explain with the number of nodes that failed', () => {
    expect(memoryFilter.explain(1)).toBe('insufficient memory on 1 node');
    expect(memoryFilter.explain(3)).toBe('insufficient memory on 3 nodes');
    expect(pipelineFor(task('t', { constraints: ['node.role==manager'] })).map((f) => f.name)).toEqual([
      'ready',
      'availability',
      'constraint node.role==manager',
      'cpu',
      'memory',
      'max-replicas',
    ]);
  });
});
