import { describe, expect, it } from 'vitest';
import { Heap } from '../../src/scheduler/heap';

describe('Heap', () => {
  it('pops in order, from initial items and pushes', () => {
    const h = new Heap<number>((a, b) => a < b, [5, 3, 9, 1, 7]);
    h.push(4);
    h.push(0);
    const out: number[] = [];
    while (h.size) out.push(h.pop()!);
    expect(out).toEqual([0, 1, 3, 4, 5, 7, 9]);
    expect(h.pop()).toBeUndefined();
  });

  it('re-sifts the top after its key grew', () => {
    const items = [{ k: 1 }, { k: 2 }, { k: 3 }];
    const h = new Heap<{ k: number }>((a, b) => a.k < b.k, items);
    h.peek()!.k = 10;
    h.topChanged();
    expect(h.peek()!.k).toBe(2);
    h.peek()!.k = 2.5;
    h.topChanged();
    expect(h.peek()!.k).toBe(2.5);
  });
});
