import { invalidArgument } from './errors';

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * "64m", "64MiB", "64mb", "1.5g", "512k", "1048576" → bytes. Units are binary whatever the
 * spelling, as Docker's RAMInBytes reads them, so `-m 64m` means what Docker users expect.
 */
export function parseBytes(text: string, what = 'size'): number {
  const m = /^(\d+(?:\.\d+)?) ?(?:([kmg])(?:i?b)?|(b))?$/i.exec(text.trim());
  if (!m) throw invalidArgument(`invalid ${what} "${text}": use a number with an optional unit b, k, m or g`);
  const unit = (m[2] ?? m[3] ?? '').toLowerCase();
  const bytes = Math.floor(Number(m[1]) * BYTE_UNITS[unit]);
  if (!Number.isSafeInteger(bytes)) throw invalidArgument(`invalid ${what} "${text}": too large`);
  return bytes;
}

/**
 * "0.5" → 500000000 nano CPUs. Computed from the digits, not through a float, so "0.3" is exactly
 * 300000000; more than nine decimals cannot be represented and is refused, as Docker does.
 */
export function parseCpus(text: string, what = 'cpus'): number {
  const m = /^(\d*)(?:\.(\d*))?$/.exec(text.trim());
  if (!m || !(m[1] || m[2])) throw invalidArgument(`invalid ${what} "${text}": use a number of CPUs such as 0.5 or 2`);
  const fraction = m[2] ?? '';
  if (fraction.length > 9) throw invalidArgument(`invalid ${what} "${text}": at most 9 decimal places`);
  const nanos = Number(m[1] || '0') * 1e9 + Number(fraction.padEnd(9, '0'));
  if (!Number.isSafeInteger(nanos)) throw invalidArgument(`invalid ${what} "${text}": too large`);
  return nanos;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go-style durations, "10s", "500ms", "1m30s", "1.5h", "0" → milliseconds (rounded). */
export function parseDuration(text: string, what = 'duration'): number {
  const s = text.trim();
  const bad = () =>
    invalidArgument(`invalid ${what} "${text}": use a number with a unit ms, s, m or h, such as 10s or 1m30s`);
  if (s === '0') return 0;
  if (!/^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/.test(s)) throw bad();
  let ms = 0;
  for (const [, n, unit] of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) ms += Number(n) * DURATION_UNITS[unit];
  const rounded = Math.round(ms);
  if (!Number.isSafeInteger(rounded)) throw bad();
  return rounded;
}

const BYTE_NAMES = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 67108864 → "64MiB", 1610612736 → "1.5GiB" (at most two decimals). */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let i = 0;
  while (Math.abs(value) >= 1024 && i < BYTE_NAMES.length - 1) {
    value /= 1024;
    i++;
  }
  return `${Number(value.toFixed(2))}${BYTE_NAMES[i]}`;
}

/** 90500 → "1m30.5s", 500 → "500ms", 7200000 → "2h"; parseDuration reads it back. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s ? `${s}s` : ''}`;
}
