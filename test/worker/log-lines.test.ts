import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LogLine } from '../../src/gen/shoal/v1/LogLine';
import { K8sFileParser, readTaskLog } from '../../src/worker/task-logs';

const rec = (n: number, stream: string, tag: string, text: string) => `2026-01-01T00:00:00.00000000${n}+00:00 ${stream} ${tag} ${text}\n`;
const pairs = (lines: LogLine[]) => lines.map((l) => [l.stream, l.line]);

describe('k8s-file records into lines', () => {
  it('ends a piece of a stdout line where stderr writes, keeping the order it was written in', () => {
    // `printf nonl; mount … ; id` as conmon logs it: stdout's piece, stderr's line, the rest of stdout
    const p = new K8sFileParser('t1');
    const lines = p.push(rec(1, 'stdout', 'P', 'nonl') + rec(2, 'stderr', 'F', 'mount: permission denied') + rec(3, 'stdout', 'F', 'uid=0(root)'));
    expect(pairs(lines)).toEqual([
      ['stdout', 'nonl'],
      ['stderr', 'mount: permission denied'],
      ['stdout', 'uid=0(root)'],
    ]);
  });

  it('joins the pieces of one long line while the same stream goes on', () => {
    const p = new K8sFileParser('t1');
    expect(pairs(p.push(rec(1, 'stdout', 'P', 'hel') + rec(2, 'stdout', 'P', 'lo ') + rec(3, 'stdout', 'F', 'world')))).toEqual([['stdout', 'hello world']]);
  });

  it('gives a last piece without a newline as a line when the log ends', () => {
    const p = new K8sFileParser('t1');
    expect(p.push(rec(1, 'stdout', 'F', 'a') + rec(2, 'stdout', 'P', 'partial-at-end'))).toMatchObject([{ line: 'a' }]);
    expect(pairs(p.flush())).toEqual([['stdout', 'partial-at-end']]);
    expect(p.flush()).toEqual([]);
  });
});

describe('readTaskLog', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-logs-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const read = async (file: string, tail = -1) => {
    const out: LogLine[] = [];
    await readTaskLog(file, 't', { tail, follow: false, signal: new AbortController().signal }, (l) => out.push(...l));
    return out.map((l) => l.line);
  };

  it('reads the rotated files oldest first, then the live one, and never the live file’s second name', async () => {
    const log = path.join(dir, 't.log');
    fs.writeFileSync(`${log}.2`, rec(1, 'stdout', 'F', 'one'));
    fs.writeFileSync(`${log}.1`, rec(2, 'stdout', 'F', 'two') + rec(3, 'stdout', 'P', 'thr'));
    fs.writeFileSync(log, rec(4, 'stdout', 'F', 'ee') + rec(5, 'stderr', 'P', 'last'));
    fs.linkSync(log, `${log}.0`);
    expect(await read(log)).toEqual(['one', 'two', 'three', 'last']);
    expect(await read(log, 2)).toEqual(['three', 'last']);
  });

  it('follows the log across a file conmon swapped in, losing nothing written to the old one', async () => {
    const log = path.join(dir, 't.log');
    fs.writeFileSync(log, rec(1, 'stdout', 'F', 'first'));
    const out: string[] = [];
    const abort = new AbortController();
    const done = readTaskLog(log, 't', { tail: -1, follow: true, signal: abort.signal }, (l) => out.push(...l.map((x) => x.line ?? '')));
    const until = async (n: number) => {
      for (let i = 0; i < 200 && out.length < n; i++) await new Promise((r) => setTimeout(r, 20));
    };
    await until(1);
    // as conmon does it: the rest goes to the old file, then a new file is renamed over it
    fs.appendFileSync(log, rec(2, 'stdout', 'F', 'second'));
    fs.writeFileSync(`${log}.tmp`, rec(3, 'stdout', 'F', 'third'));
    fs.renameSync(`${log}.tmp`, log);
    await until(3);
    abort.abort();
    await done;
    expect(out).toEqual(['first', 'second', 'third']);
  });
});
