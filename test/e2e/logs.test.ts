import { spawn, type ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { logsOf, runningOf, waitFor } from './observe';
import { useE2eNode } from './use-node';
import { thenIdle } from '../helpers/workloads';

const node = useE2eNode();
const CLI = path.join(__dirname, '../../dist/src/cli/main.js');

/** Writes `line 1` to `line 5` (and one line to stderr), then idles. */
const FIVE = thenIdle('for i in 1 2 3 4 5; do echo "line $i"; done; echo "oops" >&2');
/** Writes a numbered line every 0.1 s for as long as it runs. */
const COUNTER = ['sh', '-c', 'trap "exit 0" TERM; i=0; while true; do i=$((i+1)); echo "n=$i"; sleep 0.1; done'];

/** Lines of `service logs` output, split into the task prefix and the text. */
const parse = (out: string) =>
  out
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = /^(\S+)\s+\| (.*)$/.exec(l);
      if (!m) throw new Error(`not a log line: ${l}`);
      return { task: m[1], text: m[2] };
    });

/** What each task printed, by task name. */
function byTask(out: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const { task, text } of parse(out)) m.set(task, [...(m.get(task) ?? []), text]);
  return m;
}

const followers: ChildProcess[] = [];
afterEach(async () => {
  for (const p of followers.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
    }
  }
});

/** Waits until both replicas of `five` have written all their lines. */
async function fiveReady(): Promise<string[]> {
  return waitFor('both replicas of five to have written line 5', async () => {
    const lines = await logsOf(node, 'five');
    const tasks = (await runningOf(node, 'five')).map((t) => t.id);
    return tasks.length === 2 && tasks.every((id) => lines.some((l) => l.task_id === id && l.line === 'line 5')) && tasks;
  });
}

describe('service logs', () => {
  it('prints every line of every task, prefixed with the task, stderr to stderr', async () => {
    node.ok('service', 'create', '--name', 'five', '--replicas', '2', 'shoal-test:latest', ...FIVE);
    const ids = await fiveReady();
    const r = node.shoal('service', 'logs', 'five');
    expect(r.code).toBe(0);
    const out = byTask(r.stdout);
    expect([...out.keys()].sort()).toEqual(ids.map((id) => expect.stringMatching(new RegExp(`^five\\.[12]\\.${id}@${os.hostname()}$`))).sort());
    for (const lines of out.values()) expect(lines).toEqual(['line 1', 'line 2', 'line 3', 'line 4', 'line 5']);
    expect(parse(r.stderr).map((l) => l.text)).toEqual(['oops', 'oops']);
  });

  it('-n N gives the last N lines of each task', async () => {
    node.ok('service', 'create', '--name', 'five', '--replicas', '2', 'shoal-test:latest', ...FIVE);
    await fiveReady();
    // stdout and stderr lines are one log: the last two are "line 5" and "oops".
    const two = node.shoal('service', 'logs', '-n', '2', 'five');
    expect([...byTask(two.stdout).values()]).toEqual([['line 5'], ['line 5']]);
    expect(parse(two.stderr)).toHaveLength(2);
    const three = byTask(node.ok('service', 'logs', '--tail', '3', 'five'));
    expect([...three.values()]).toEqual([
      ['line 4', 'line 5'],
      ['line 4', 'line 5'],
    ]);
    expect(node.shoal('service', 'logs', '-n', '0', 'five')).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect([...byTask(node.ok('service', 'logs', '-n', 'all', 'five')).values()].map((l) => l.length)).toEqual([5, 5]);
  });

  it('-t prefixes each line with the time conmon recorded it, in order', async () => {
    node.ok('service', 'create', '--name', 'five', '--replicas', '2', 'shoal-test:latest', ...FIVE);
    const ids = await fiveReady();
    const tasks = await runningOf(node, 'five');
    const out = node.ok('service', 'logs', '-t', 'five');
    for (const [task, lines] of byTask(out)) {
      const started = Date.parse(tasks.find((t) => task.includes(`.${t.id}@`))!.created_at);
      const stamps = lines.map((l) => {
        const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}(?:Z|[+-]\d\d:\d\d)) (line \d)$/.exec(l);
        expect(m, l).not.toBeNull();
        return Date.parse(m![1]);
      });
      expect(lines.map((l) => l.replace(/^\S+ /, ''))).toEqual(['line 1', 'line 2', 'line 3', 'line 4', 'line 5']);
      expect([...stamps].sort((a, b) => a - b)).toEqual(stamps);
      // Written by this task, after the manager made it: a real clock reading, not a placeholder.
      expect(stamps[0]).toBeGreaterThanOrEqual(started);
    }
    expect(ids).toHaveLength(2);
  });

  it('--since leaves out what was written before the time given, and refuses a time it cannot read', async () => {
    node.ok('service', 'create', '--name', 'counter', 'shoal-test:latest', ...COUNTER);
    await waitFor('counter to log 10 lines', async () => (await logsOf(node, 'counter')).length >= 10);
    const lines = await logsOf(node, 'counter');
    const cut = lines[5];
    // The sixth line's own stamp as the cut, as an RFC 3339 date and as a Unix time.
    for (const since of [cut.timestamp!, (Date.parse(cut.timestamp!) / 1000).toFixed(3)]) {
      const texts = parse(node.ok('service', 'logs', '--since', since, 'counter')).map((l) => l.text);
      expect(texts[0], since).toBe(cut.line);
      expect(texts.slice(0, 5)).toEqual(lines.slice(5, 10).map((l) => l.line));
    }
    expect(parse(node.ok('service', 'logs', '--since', '1h', 'counter')).length).toBeGreaterThanOrEqual(10);
    expect(node.ok('service', 'logs', '--since', '2099-01-01T00:00:00Z', 'counter')).toBe('');
    const bad = node.shoal('service', 'logs', '--since', 'yesterday', 'counter');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--since must be a duration back from now \(10m, 1h30m\), a Unix time in seconds or an RFC 3339 date/);
  });

  it('-f keeps printing lines written after it started, until interrupted', async () => {
    node.ok('service', 'create', '--name', 'counter', 'shoal-test:latest', ...COUNTER);
    await waitFor('counter to log', async () => (await logsOf(node, 'counter')).length > 0);
    const follower = spawn(process.execPath, [CLI, '-H', node.socket, 'service', 'logs', '-f', 'counter'], { stdio: ['ignore', 'pipe', 'pipe'] });
    followers.push(follower);
    let out = '';
    follower.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const numbers = () => [...out.matchAll(/\| n=(\d+)$/gm)].map((m) => Number(m[1]));
    await waitFor('the follower to print the log so far', () => numbers().length > 0);
    // Read after the follower started: anything numbered higher was written after it started.
    const before = Math.max(...(await logsOf(node, 'counter')).map((l) => Number(l.line.slice(2))));
    await waitFor(`the follower to print a line numbered above ${before}`, () => Math.max(...numbers()) > before + 5);
    expect(follower.exitCode).toBeNull();
    const seen = numbers();
    expect(seen).toEqual(seen.map((_, i) => seen[0] + i));

    const exited = new Promise<number | null>((r) => follower.once('exit', (code) => r(code)));
    follower.kill('SIGINT');
    expect(await exited).toBe(0);
  });
});
