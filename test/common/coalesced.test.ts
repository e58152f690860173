import { describe, expect, it } from 'vitest';
import { Coalesced } from '../../src/common/coalesced';

describe('Coalesced', () => {
  it('runs one pass at a time, and calls made during a pass share one more pass after it', async () => {
    let state = 0;
    let running = 0;
    let most = 0;
    const seen: number[] = [];
    const pass = new Coalesced(async () => {
      running++;
      most = Math.max(most, running);
      const read = state;
      await new Promise((r) => setTimeout(r, 20));
      seen.push(read);
      running--;
      return read;
    });
    const first = pass.run();
    state = 1;
    const second = pass.run();
    state = 2;
    const third = pass.run();
    expect(await first).toBe(0);
    // Both later calls see the state of the last of them.
    expect(await second).toBe(2);
    expect(await third).toBe(2);
    expect(seen).toEqual([0, 2]);
    expect(most).toBe(1);
    state = 3;
    expect(await pass.run()).toBe(3);
  });

  it('goes on after a failed pass, and the caller of the failed pass gets its error', async () => {
    let passes = 0;
    const pass = new Coalesced(async () => {
      await new Promise((r) => setTimeout(r, 5));
      if (++passes === 1) throw new Error('nft failed');
      return 'ok';
    });
    const first = pass.run();
    const second = pass.run();
    await expect(first).rejects.toThrow('nft failed');
    await expect(second).resolves.toBe('ok');
  });
});
