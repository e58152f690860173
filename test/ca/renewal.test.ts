import { describe, expect, it } from 'vitest';
import { renewalDelayMs } from '../../src/ca/renewal';

const DAY = 24 * 3600e3;
const notBefore = new Date('2030-01-01T00:00:00Z');
const notAfter = new Date(notBefore.getTime() + 90 * DAY);
const issuedAt = notBefore.getTime();

describe('renewalDelayMs', () => {
  it('renews at 50% of the lifetime at the earliest and 80% at the latest', () => {
    expect(renewalDelayMs(notBefore, notAfter, () => 0, issuedAt)).toBe(45 * DAY);
    expect(renewalDelayMs(notBefore, notAfter, () => 1, issuedAt)).toBe(72 * DAY);
    expect(renewalDelayMs(notBefore, notAfter, () => 0.5, issuedAt)).toBe(58.5 * DAY);
  });

  it('stays inside the window for any draw of Math.random', () => {
    for (let i = 0; i < 1000; i++) {
      const delay = renewalDelayMs(notBefore, notAfter, Math.random, issuedAt);
      expect(delay).toBeGreaterThanOrEqual(45 * DAY);
      expect(delay).toBeLessThanOrEqual(72 * DAY);
    }
  });

  it('is measured from now', () => {
    const tenDaysIn = issuedAt + 10 * DAY;
    expect(renewalDelayMs(notBefore, notAfter, () => 0, tenDaysIn)).toBe(35 * DAY);
  });

  it('is 0 once the chosen point has passed, and for an expired certificate', () => {
    expect(renewalDelayMs(notBefore, notAfter, () => 0, issuedAt + 60 * DAY)).toBe(0);
    expect(renewalDelayMs(notBefore, notAfter, () => 0.5, notAfter.getTime() + DAY)).toBe(0);
  });

  it('uses the clock when not told the time', () => {
    const start = new Date();
    const end = new Date(start.getTime() + DAY);
    const delay = renewalDelayMs(start, end, () => 0);
    expect(delay).toBeGreaterThan(0.49 * DAY);
    expect(delay).toBeLessThanOrEqual(0.5 * DAY);
  });
});
