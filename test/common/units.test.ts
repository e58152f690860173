import { describe, expect, it } from 'vitest';
import { formatBytes, formatDuration, parseBytes, parseCpus, parseDuration } from '../../src/common/units';
import { ShoalError } from '../../src/common/errors';
import { status } from '@grpc/grpc-js';

describe('parseBytes', () => {
  it.each([
    ['1048576', 1048576],
    ['512k', 512 * 1024],
    ['64m', 64 * 2 ** 20],
    ['64MiB', 64 * 2 ** 20],
    ['64mb', 64 * 2 ** 20],
    ['64 M', 64 * 2 ** 20],
    ['1g', 2 ** 30],
    ['1.5G', 1.5 * 2 ** 30],
    ['100b', 100],
  ])('%s → %d', (text, bytes) => {
    expect(parseBytes(text)).toBe(bytes);
  });

  it.each(['64x', '', 'm', '-1m', '64ib', '1e3'])('rejects %j, naming what was wrong', (text) => {
    expect(() => parseBytes(text, 'memory')).toThrow(`invalid memory "${text}": use a number with an optional unit b, k, m or g`);
  });

  it('throws an INVALID_ARGUMENT ShoalError', () => {
    const err = (() => {
      try {
        parseBytes('64x');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ShoalError);
    expect((err as ShoalError).code).toBe(status.INVALID_ARGUMENT);
  });
});

describe('parseCpus', () => {
  it.each([
    ['0.5', 5e8],
    ['2', 2e9],
    ['.25', 2.5e8],
    ['0.3', 3e8],
    ['1.000000001', 1e9 + 1],
  ])('%s → %d', (text, nanos) => {
    expect(parseCpus(text)).toBe(nanos);
  });

  it('rejects what is not a plain non-negative number', () => {
    for (const text of ['x', '', '.', '-1', '1e9']) {
      expect(() => parseCpus(text)).toThrow(`invalid cpus "${text}": use a number of CPUs such as 0.5 or 2`);
    }
    expect(() => parseCpus('0.0000000001')).toThrow('at most 9 decimal places');
  });
});

describe('parseDuration', () => {
  it.each([
    ['10s', 10_000],
    ['500ms', 500],
    ['1m30s', 90_000],
    ['2h', 7_200_000],
    ['1.5s', 1500],
    ['1h0m5s', 3_605_000],
    ['0', 0],
  ])('%s → %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['10', '', '5d', '1m 30s', '-1s', 's'])('rejects %j', (text) => {
    expect(() => parseDuration(text, 'restart delay')).toThrow(
      `invalid restart delay "${text}": use a number with a unit ms, s, m or h, such as 10s or 1m30s`,
    );
  });
});

describe('formatting', () => {
  it('formats bytes in binary units', () => {
    expect(formatBytes(512)).toBe('512B');
    expect(formatBytes(64 * 2 ** 20)).toBe('64MiB');
    expect(formatBytes(1.5 * 2 ** 30)).toBe('1.5GiB');
    expect(formatBytes(0)).toBe('0B');
  });

  it('formats durations so that parseDuration reads them back', () => {
    for (const [ms, text] of [
      [0, '0ms'],
      [500, '500ms'],
      [10_000, '10s'],
      [90_500, '1m30.5s'],
      [7_200_000, '2h'],
      [3_605_000, '1h5s'],
    ] as const) {
      expect(formatDuration(ms)).toBe(text);
      expect(parseDuration(text)).toBe(ms);
    }
  });
});
