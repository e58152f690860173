import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { apiOf } from './observe';
import { useE2eNode } from './use-node';
import { IDLE } from '../helpers/workloads';

const node = useE2eNode();
const CLI = path.join(__dirname, '../../dist/src/cli/main.js');
const DAEMON = path.join(__dirname, '../../dist/src/daemon/main.js');

interface Run {
  args: string[];
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program without blocking, so the many refusals below can be checked side by side. */
function run(file: string, args: string[]): Promise<Run> {
  return new Promise((resolve) =>
    execFile(process.execPath, [file, ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ args, code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    ),
  );
}

/** Each command's result, at most four at a time. */
async function runAll(file: string, commands: string[][]): Promise<Run[]> {
  const out: Run[] = [];
  for (let i = 0; i < commands.length; i += 4) out.push(...(await Promise.all(commands.slice(i, i + 4).map((c) => run(file, c)))));
  return out;
}

/** A refusal: non-zero, nothing on stdout, and one line on stderr that says `message`. */
function expectRefused(r: Run, message: RegExp): void {
  const what = r.args.join(' ');
  expect(r.code, what).not.toBe(0);
  expect(r.stdout, what).toBe('');
  expect(r.stderr.trim().split('\n'), what).toHaveLength(1);
  expect(r.stderr, what).toMatch(message);
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** What the CLI says of a value its option parser refuses: the option, the value, and a sentence naming the option. */
const parserRefusal = (flag: string, value: string) => new RegExp(`^error: option '${flag} <\\w+>' argument '${escape(value)}' is invalid\\. .*${flag}\\b`);

/** Every numeric and duration option of create and update, with values each must refuse. */
const BAD_VALUES: [string, string[]][] = [
  ['--replicas', ['two', '1.5']],
  ['--limit-memory', ['12x', '99999999999999g']],
  ['--limit-cpu', ['-1', '0.0000000001']],
  ['--limit-pids', ['1e3', '']],
  ['--reserve-memory', ['-5m', '5 tb']],
  ['--reserve-cpu', ['all', '1e3']],
  ['--restart-delay', ['5', '-1s']],
  ['--restart-max-attempts', ['x', '3.0']],
  ['--restart-window', ['1d', '1m-']],
  ['--stop-grace-period', ['10', 'forever']],
  ['--replicas-max-per-node', ['1.5', 'one']],
];

// Many CLI runs: on a busy 2-core host each takes a second or more.
const MANY = 180_000;

describe('flag validation', () => {
  it('service create refuses every bad numeric and duration value, naming the flag, and creates nothing', async () => {
    const cases = BAD_VALUES.flatMap(([flag, values]) => values.map((v) => [flag, v]));
    const results = await runAll(CLI, cases.map(([flag, v]) => ['-H', node.socket, 'service', 'create', '-d', '--name', 'bad', `${flag}=${v}`, 'shoal-test:latest']));
    results.forEach((r, i) => expectRefused(r, parserRefusal(cases[i][0], cases[i][1])));
    expect((await apiOf(node).listServices()).services).toEqual([]);
  }, MANY);

  it('service update refuses them too and leaves the service as it was', async () => {
    node.ok('service', 'create', '--name', 'web', 'shoal-test:latest', ...IDLE);
    const before = await apiOf(node).getService('web');
    const cases = BAD_VALUES.map(([flag, values]) => [flag, values[0]]);
    const results = await runAll(CLI, cases.map(([flag, v]) => ['-H', node.socket, 'service', 'update', '-d', `${flag}=${v}`, 'web']));
    results.forEach((r, i) => expectRefused(r, parserRefusal(cases[i][0], cases[i][1])));
    expect(await apiOf(node).getService('web')).toEqual(before);
  }, MANY);

  it('other checked options of create name the field and the rule', async () => {
    const cases: [string[], RegExp][] = [
      [['--stop-signal', 'SIGNOPE'], /stop_signal: must be a signal name such as SIGTERM or a number from 1 to 64/],
      [['--stop-signal', '65'], /stop_signal: must be a signal name/],
      [['--restart-condition', 'sometimes'], /restart_policy\.condition: must be one of any, on-failure, none/],
      [['--constraint', 'node.color==red'], /constraints\[0\]: "node\.color==red" has an unknown key/],
      [['--constraint', 'node.hostname'], /constraints\[0\]: "node\.hostname" is not key==value or key!=value/],
      [['--env', '=oops'], /env\[0\]: must be KEY=VALUE/],
      [['--limit-memory', '1k'], /limits\.memory_bytes: must be 0 \(no limit\) or at least 6 MiB/],
      [['--limit-cpu', '1', '--reserve-cpu', '2'], /reservations\.nano_cpus: must not exceed limits\.nano_cpus/],
    ];
    const results = await runAll(
      CLI,
      cases.map(([flags]) => ['-H', node.socket, 'service', 'create', '-d', '--name', 'bad', ...flags, 'shoal-test:latest']),
    );
    results.forEach((r, i) => expectRefused(r, cases[i][1]));
    expect((await apiOf(node).listServices()).services).toEqual([]);
  });

  it('scale and logs refuse bad counts, naming them', async () => {
    node.ok('service', 'create', '--name', 'web', 'shoal-test:latest', ...IDLE);
    const before = await apiOf(node).getService('web');
    const h = ['-H', node.socket];
    const results = await runAll(CLI, [
      [...h, 'service', 'scale', 'web=two'],
      [...h, 'service', 'scale', 'web=-1'],
      [...h, 'service', 'scale', 'web=1.5'],
      [...h, 'service', 'scale', 'web'],
      [...h, 'service', 'logs', '-n', 'x', 'web'],
      [...h, 'service', 'logs', '--tail', '1.5', 'web'],
    ]);
    expectRefused(results[0], /invalid replicas "two" for web: must be a non-negative integer/);
    expectRefused(results[1], /invalid replicas "-1" for web: must be a non-negative integer/);
    expectRefused(results[2], /invalid replicas "1\.5" for web/);
    expectRefused(results[3], /invalid scale argument "web": use SERVICE=REPLICAS/);
    expectRefused(results[4], /--tail must be a non-negative integer, got "x"/);
    expectRefused(results[5], /--tail must be a non-negative integer, got "1\.5"/);
    expect(await apiOf(node).getService('web')).toEqual(before);
  });

  it('image commands refuse bad image references, saying what is wrong with them', async () => {
    // Which images there are and their tags; use counts may move while other tests' tasks stop.
    const images = async () => (await apiOf(node).listImages()).images.map((i) => ({ id: i.id, tags: i.tags }));
    const before = await images();
    const refs: [string, RegExp][] = [
      ['Upper:tag', /invalid image reference "Upper:tag": repository names must be lowercase/],
      ['a//b', /invalid image reference "a\/\/b": "" is not a valid name component/],
      ['x@sha256:abc', /invalid image reference "x@sha256:abc": a digest is sha256: followed by 64 lowercase hex digits/],
      ['x@md5:abc', /invalid image reference "x@md5:abc": only sha256 digests are supported/],
      ['127.0.0.1:5000/x:', /invalid image reference "127\.0\.0\.1:5000\/x:": tag "" may hold only/],
      ['bad_host:5000/x/y', /invalid image reference "bad_host:5000\/x\/y": "bad_host:5000" is not a valid registry host/],
    ];
    const results = await runAll(
      CLI,
      refs.flatMap(([ref]) => [
        ['-H', node.socket, 'image', 'pull', ref],
        ['-H', node.socket, 'image', 'rm', ref],
      ]),
    );
    results.forEach((r, i) => expectRefused(r, refs[Math.floor(i / 2)][1]));
    const empty = await runAll(CLI, [['-H', node.socket, 'image', 'pull', '']]);
    expectRefused(empty[0], /image reference is empty/);
    expect(await images()).toEqual(before);
  }, MANY);

  it('service create and update refuse an image reference with whitespace or none, naming the image', async () => {
    const h = ['-H', node.socket];
    node.ok('service', 'create', '--name', 'web', 'shoal-test:latest', ...IDLE);
    const before = await apiOf(node).getService('web');
    const results = await runAll(CLI, [
      [...h, 'service', 'create', '-d', '--name', 'bad', 'shoal test'],
      [...h, 'service', 'create', '-d', '--name', 'bad', ''],
      [...h, 'service', 'update', '-d', '--image', 'a b', 'web'],
      [...h, 'service', 'update', '-d', '--image', '', 'web'],
    ]);
    expectRefused(results[0], /container\.image: must not contain whitespace/);
    expectRefused(results[1], /container\.image: must not be empty/);
    expectRefused(results[2], /container\.image: must not contain whitespace/);
    expectRefused(results[3], /container\.image: must not be empty/);
    expect((await apiOf(node).listServices()).services.map((s) => s.service!.spec!.name)).toEqual(['web']);
    expect(await apiOf(node).getService('web')).toEqual(before);
  });

  it('shoald refuses bad numeric options before it makes anything', async () => {
    const dataDir = path.join(node.dir, 'never-made');
    const results = await runAll(
      DAEMON,
      [
        ['--image-gc-high-percent', '150'],
        ['--image-gc-high-percent', 'most'],
        ['--image-gc-max-size', '12x'],
        ['--etcd-client-port', '70000'],
        ['--etcd-peer-port', '0'],
        ['--start-concurrency', '0'],
        ['--insecure-registry', 'http://x'],
      ].map(([flag, value]) => [`--data-dir=${dataDir}`, `--socket=${path.join(dataDir, 's.sock')}`, flag, value]),
    );
    expectRefused(results[0], /--image-gc-high-percent <n>' argument '150' is invalid\. must be a percentage 0-100/);
    expectRefused(results[1], /--image-gc-high-percent <n>' argument 'most' is invalid/);
    expectRefused(results[2], /invalid --image-gc-max-size "12x"/);
    expectRefused(results[3], /--etcd-client-port <port>' argument '70000' is invalid\. must be a port number 1-65535/);
    expectRefused(results[4], /--etcd-peer-port <port>' argument '0' is invalid/);
    expectRefused(results[5], /--start-concurrency <n>' argument '0' is invalid\. must be a positive integer/);
    expectRefused(results[6], /--insecure-registry <host:port>' argument 'http:\/\/x' is invalid\. must be host\[:port\]/);
    expect(fs.existsSync(dataDir)).toBe(false);
  });
});
