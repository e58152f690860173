import { describe, expect, it } from 'vitest';
import { K8sFileParser } from '../../src/worker/task-logs';

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
