import { describe, expect, it } from 'vitest';
import { settleWithin } from '../../src/common/settle';

describe('settleWithin', () => {
  it('returns when the work settles, whether it resolved or failed', async () => {
    await expect(settleWithin(Promise.resolve(1), 60_000)).resolves.toBeUndefined();
    await expect(settleWithin(Promise.reject(new Error('no quorum')), 60_000)).resolves.toBeUndefined();
    await expect(settleWithin(undefined, 60_000)).resolves.toBeUndefined();
  });

  it('stops waiting for work that never settles once the time is up', async () => {
    let settled = false;
    await settleWithin(new Promise(() => undefined), 20).then(() => (settled = true));
    expect(settled).toBe(true);
  });
});
