import { describe, expect, it } from 'vitest';
import { sinceTime } from '../../src/cli/commands/service-flags';

describe('--since', () => {
  const now = () => Date.parse('2026-11-24T12:00:00Z');
  const since = sinceTime('--since', now);

  it('takes a duration back from now', () => {
    expect(since('10m')).toBe(Date.parse('2026-11-24T11:50:00Z'));
    expect(since('1h30m')).toBe(Date.parse('2026-11-24T10:30:00Z'));
  });

  it('takes a Unix time in seconds', () => {
    expect(since('1795518000')).toBe(1795518000_000);
    expect(since('1795518000.25')).toBe(1795518000_250);
  });

  it('takes an RFC 3339 date or day', () => {
    expect(since('2026-11-24T10:00:00Z')).toBe(Date.parse('2026-11-24T10:00:00Z'));
    expect(since('2026-11-24T10:00:00+02:00')).toBe(Date.parse('2026-11-24T08:00:00Z'));
    expect(since('2026-11-24')).toBe(Date.parse('2026-11-24T00:00:00Z'));
  });

  it('refuses anything else, naming the flag and the forms it takes', () => {
    expect(() => since('yesterday')).toThrow(
      '--since must be a duration back from now (10m, 1h30m), a Unix time in seconds or an RFC 3339 date (2026-11-24T10:00:00Z), got "yesterday"',
    );
    expect(() => since('2026-13-45')).toThrow('--since must be');
  });
});
