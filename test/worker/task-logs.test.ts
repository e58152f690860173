import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogLine } from '../../src/gen/shoal/v1/LogLine';
import { K8sFileParser, readTaskLog } from '../../src/worker/task-logs';

describe('k8s-file log parser', () => {
  it('splits records into lines by stream; a partial record ends where the other stream writes', () => {
    const p = new K8sFileParser('t1');
    const lines = p.push(
      '2026-01-01T00:00:00.000000001+00:00 stdout P hel\n' +
        '2026-01-01T00:00:00.000000002+00:00 stderr F oops\n' +
        '2026-01-01T00:00:00.000000003+00:00 stdout F lo\n' +
        '2026-01-01T00:00:00.000000004+00:00 stdout F \n',
    );
    expect(lines.map((l) => [l.stream, l.line])).toEqual([
      ['stdout', 'hel'],
      ['stderr', 'oops'],
      ['stdout', 'lo'],
      ['stdout', ''],
    ]);
  });

  it('keeps an unfinished record until the rest arrives', () => {
    const p = new K8sFileParser('t1');
    expect(p.push('2026-01-01T00:00:00Z stdout F ab')).toEqual([]);
    expect(p.push('c\n')).toMatchObject([{ line: 'abc', task_id: 't1' }]);
  });
});

describe('reading a task log', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  const read = async (since: number, tail = -1): Promise<string[]> => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-task-log-'));
    dirs.push(dir);
    const file = path.join(dir, 'ctr.log');
    fs.writeFileSync(
      file,
      '2026-01-01T10:00:00.000000001+00:00 stdout F one\n' +
        '2026-01-01T11:00:00.5+01:00 stdout F two\n' +
        '2026-01-01T10:30:00.000000001Z stderr F three\n' +
        'not-a-time stdout F four\n',
    );
    const out: LogLine[] = [];
    await readTaskLog(file, 't', { tail, follow: false, sinceMs: since, signal: new AbortController().signal }, (l) => out.push(...l));
    return out.map((l) => l.line!);
  };

  it('leaves out lines older than --since, comparing instants across time zones', async () => {
    expect(await read(0)).toEqual(['one', 'two', 'three', 'four']);
    // 11:00:00.5+01:00 is 10:00:00.5Z: after 10:00:00.1Z, before 10:00:01Z.
    expect(await read(Date.parse('2026-01-01T10:00:00.1Z'))).toEqual(['two', 'three', 'four']);
    expect(await read(Date.parse('2026-01-01T10:00:01Z'))).toEqual(['three', 'four']);
  });

  it('takes the tail of what --since leaves', async () => {
    expect(await read(Date.parse('2026-01-01T10:00:00.1Z'), 2)).toEqual(['three', 'four']);
  });
});
