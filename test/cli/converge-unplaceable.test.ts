import { describe, expect, it } from 'vitest';
import { assess } from '../../src/cli/converge';
import { service, task } from '../fixtures';

const REASON = 'no suitable node (insufficient memory on 1 node)';
const unplaced = (s: ReturnType<typeof service>, slot: number) => task(s, slot, 'PENDING', { node_id: '', schedule_error: REASON });

describe('convergence assessment of tasks no node can take', () => {
  it('names the task and the scheduler’s reason when every missing task is unplaceable', () => {
    const s = service(2);
    const p = assess(s, [task(s, 1, 'RUNNING'), unplaced(s, 2)], new Map());
    expect(p).toMatchObject({ running: 1, desired: 2, converged: false });
    expect(p.unplaceable).toBe(`task web.2 cannot be placed: ${REASON}`);
    expect(p.stuck).toBeUndefined();
  });

  it('does not call it unplaceable while a stopping task may free room', () => {
    const s = service(1);
    const stopping = task(s, 1, 'RUNNING', { desired_state: 'SHUTDOWN' });
    expect(assess(s, [stopping, unplaced(s, 1)], new Map()).unplaceable).toBeUndefined();
  });

  it('does not call it unplaceable while another missing task is still on its way', () => {
    const s = service(2);
    expect(assess(s, [unplaced(s, 1), task(s, 2, 'ASSIGNED')], new Map()).unplaceable).toBeUndefined();
    expect(assess(s, [unplaced(s, 1)], new Map()).unplaceable).toBeUndefined();
  });
});
