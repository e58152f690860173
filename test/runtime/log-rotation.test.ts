import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { LogLine } from '../../src/gen/shoal/v1/LogLine';
import { Runtime } from '../../src/worker/runtime/runtime';
import { readTaskLog } from '../../src/worker/task-logs';
import { config, newId, useRuntime, type RuntimeSetup } from './helpers';

const MAX = 4096;
const FILES = 3;
/** One k8s-file record of the lines below: a 35-byte timestamp, " stdout F ", 90 bytes of text, "\n". */
const RECORD = 136;

const marker = `shoal-logrot-${Math.random().toString(36).slice(2, 8)}`;
let setup: RuntimeSetup;
let rt: Runtime;
const others: Runtime[] = [];
useRuntime(
  marker,
  (s) => {
    setup = s;
    rt = new Runtime({ ...s.opts, logSizeMax: MAX, logMaxFiles: FILES });
  },
  (r) => {
    for (const o of [rt, ...others]) o.close();
    r.close();
  },
);

/**
 * `batches` batches of 25 numbered 90-byte lines (3.4 KB, less than one file), a second's pause after
 * each, so conmon starts the file over about once a batch and the rotation keeps up.
 */
function chatty(batches: number): string[] {
  return ['sh', '-c', `i=0; while [ $i -lt ${batches * 25} ]; do printf 'line-%05d-%080d\\n' $i 0; i=$((i+1)); [ $((i % 25)) = 0 ] && sleep 1; done; sleep 60`];
}

async function lines(file: string): Promise<string[]> {
  const out: LogLine[] = [];
  await readTaskLog(file, 't', { tail: -1, follow: false, signal: new AbortController().signal }, (l) => out.push(...l));
  return out.map((l) => l.line ?? '');
}

async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const files = (log: string) => fs.readdirSync(setup.logs).filter((f) => f.startsWith(`${log.split('/').pop()}`)).sort();
const lastLine = (n: number) => `line-${String(n).padStart(5, '0')}-${'0'.repeat(80)}`;

describe('task log rotation around conmon --log-size-max', () => {
  it('keeps --log-max-files files of at most --log-size-max each, read back in order', async () => {
    const c = config(newId(), setup.layer, setup.logs, { args: chatty(8) });
    await rt.create(c);
    await rt.start(c.id);
    await until('the last line', async () => (await lines(c.logPath)).includes(lastLine(199)));
    // the live file, its second name .0 and FILES - 1 rotated ones; nothing older
    expect(files(c.logPath)).toEqual([`${c.id}.log`, `${c.id}.log.0`, `${c.id}.log.1`, `${c.id}.log.2`]);
    for (const f of files(c.logPath)) expect(fs.statSync(`${setup.logs}/${f}`).size).toBeLessThanOrEqual(MAX + RECORD);
    const got = await lines(c.logPath);
    const numbers = got.map((l) => Number(/^line-(\d+)-/.exec(l)?.[1]));
    // oldest first, across the files, and more than the live file alone holds
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
    expect(numbers.at(-1)).toBe(199);
    expect(numbers.length).toBeGreaterThan(MAX / RECORD);
    // each file is one run of lines: nothing missing inside the files kept
    expect(numbers).toEqual(numbers.map((_, i) => numbers[0] + i));
  });

  it('rotates an old log out of the way before conmon appends to it uncounted', async () => {
    const c = config(newId(), setup.layer, setup.logs, { args: ['sh', '-c', 'echo second run'] });
    fs.mkdirSync(setup.logs, { recursive: true });
    fs.writeFileSync(c.logPath, `2026-01-01T00:00:00.000000000+00:00 stdout F first run ${'x'.repeat(MAX)}\n`);
    const exited = new Promise<void>((resolve) => {
      const off = rt.onExit((id) => id === c.id && (off(), resolve()));
    });
    await rt.create(c);
    await rt.start(c.id);
    await exited;
    expect(fs.readFileSync(c.logPath, 'utf8')).not.toContain('first run');
    expect(fs.readFileSync(`${c.logPath}.1`, 'utf8')).toContain('first run');
    expect((await lines(c.logPath)).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['first run', 'second run']);
  });

  it('keeps rotating the logs of containers a new runtime adopts', async () => {
    const c = config(newId(), setup.layer, setup.logs, { args: ['sh', '-c', `sleep 2; ${chatty(4)[2]}`] });
    await rt.create(c);
    await rt.start(c.id);
    // the daemon restarts: a new runtime on the same dirs, the old one gone
    rt.close();
    rt = new Runtime({ ...setup.opts, logSizeMax: MAX, logMaxFiles: FILES });
    others.push(rt);
    await until('the last line', async () => (await lines(c.logPath)).includes(lastLine(99)));
    expect(files(c.logPath)).toContain(`${c.id}.log.2`);
    const numbers = (await lines(c.logPath)).map((l) => Number(/^line-(\d+)-/.exec(l)?.[1]));
    expect(numbers.length).toBeGreaterThan(MAX / RECORD);
    expect(numbers.at(-1)).toBe(99);
  });
});
