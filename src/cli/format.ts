import { type Command, InvalidArgumentError } from 'commander';
import Table from 'cli-table3';

/** Prints rows as Docker does: upper-case headers, columns padded by three spaces, no borders. */
export function printTable(head: string[], rows: (string | number)[][]): void {
  const table = new Table({
    head,
    chars: {
      top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
      left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '',
    },
    style: { 'padding-left': 0, 'padding-right': 3, head: [], border: [], compact: true },
  });
  table.push(...rows.map((r) => r.map(String)));
  process.stdout.write(`${table.toString().split('\n').map((l) => l.trimEnd()).join('\n')}\n`);
}

/** JSON for scripts; drops the "_field" markers proto3 optionals carry on decoding. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, (key, v) => (key.startsWith('_') ? undefined : v), 2)}\n`);
}

/** "3 seconds ago", "2 minutes ago", as Docker words it. */
export function ago(iso: string, nowMs = Date.now()): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((nowMs - t) / 1000));
  const unit = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'} ago`;
  if (s < 1) return 'Less than a second ago';
  if (s < 60) return unit(s, 'second');
  if (s < 3600) return unit(Math.round(s / 60), 'minute');
  if (s < 86400) return unit(Math.round(s / 3600), 'hour');
  if (s < 86400 * 365) return unit(Math.round(s / 86400), 'day');
  return unit(Math.floor(s / (86400 * 365)), 'year');
}

/** "RUNNING" -> "Running"; "NODE_READY" -> "Ready". */
export function titleCase(state: string): string {
  const s = state.replace(/^NODE_/, '').toLowerCase();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export const shortId = (id: string) => id.slice(0, 12);

export interface ListingOptions {
  quiet?: boolean;
  format: 'table' | 'json';
}

function listingFormat(value: string): ListingOptions['format'] {
  if (value !== 'table' && value !== 'json') throw new InvalidArgumentError('must be "table" or "json"');
  return value;
}

/** The -q and --format options every listing command has, as Docker's do. */
export function listingOptions(cmd: Command, what: string): Command {
  return cmd.option('-q, --quiet', `print only ${what} IDs`).option('--format <format>', '"table" or "json"', listingFormat, 'table');
}

/**
 * Prints a listing as IDs (-q) or JSON (--format json) and returns true; returns false when the
 * caller should print its table.
 */
export function printIdsOrJson<T>(opts: ListingOptions, items: T[], id: (item: T) => string, json: (item: T) => unknown = (i) => i): boolean {
  if (opts.quiet) process.stdout.write(items.map((i) => `${id(i)}\n`).join(''));
  else if (opts.format === 'json') printJson(items.map(json));
  else return false;
  return true;
}
