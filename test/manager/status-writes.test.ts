import { describe, expect, it } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import type { TaskState__Output } from '../../src/gen/shoal/v1/TaskState';
import { statusWrites } from '../../src/manager/dispatcher/status-writes';
import { service, task } from '../fixtures';

const s = service(3);
const report = (t: Task__Output, state: TaskState__Output) => ({ task_id: t.id, status: { ...t.status!, state, message: state } });

describe('statusWrites', () => {
  const a = task(s, 1, 'ASSIGNED', { node_id: 'n1' });
  const b = task(s, 2, 'ASSIGNED', { node_id: 'n2' });
  const c = task(s, 3, 'RUNNING', { node_id: 'n2' });
  const store = new Map([a, b, c].map((t) => [t.id, t]));
  const get = (id: string) => store.get(id);

  it("writes the reports of several nodes together, each compare-and-swap on the task as read", () => {
    const ops = statusWrites(
      [
        { nodeId: 'n1', updates: [report(a, 'RUNNING')] },
        { nodeId: 'n2', updates: [report(b, 'STARTING'), report(c, 'FAILED')] },
      ],
      get,
    );
    expect(ops.map((o) => o.type === 'update' && [o.obj.id, (o.obj as Task__Output).status!.state, o.obj.version])).toEqual([
      [a.id, 'RUNNING', 1],
      [b.id, 'STARTING', 1],
      [c.id, 'FAILED', 1],
    ]);
  });

  it('makes one write per task, of the furthest state reported, whichever call came first', () => {
    const ops = statusWrites(
      [
        { nodeId: 'n1', updates: [report(a, 'STARTING')] },
        { nodeId: 'n1', updates: [report(a, 'RUNNING'), report(a, 'PREPARING')] },
      ],
      get,
    );
    expect(ops).toHaveLength(1);
    expect((ops[0].type === 'update' && (ops[0].obj as Task__Output).status!.state)).toBe('RUNNING');
  });

  it("ignores a report from another node, on an unknown task, or that does not move the task forward", () => {
    const ops = statusWrites(
      [
        { nodeId: 'n2', updates: [report(a, 'RUNNING'), { task_id: 'nope', status: c.status }, report(c, 'STARTING'), report(c, 'RUNNING')] },
      ],
      get,
    );
    expect(ops).toEqual([]);
  });
});
