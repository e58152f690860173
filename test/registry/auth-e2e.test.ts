import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import { buildTestImage, NODE_TEST_TIMEOUT_MS, NODE_WAIT_MS, TestNode } from '../helpers/test-node';
import { allSettledOrThrow, waitFor } from '../helpers/wait';
import { TestRegistry } from './registry';
import { IDLE as WORKLOAD } from '../helpers/workloads';
import { closeApi, tasksOf } from '../e2e/observe';

// A private registry (basic auth), a real node, and the CLI user's config in a temp dir.
const PASSWORD = 'pw-Zq81-never-shown';
const node = new TestNode();
const registry = new TestRegistry({ username: 'ci', password: PASSWORD });
const configDir = path.join(node.dir, 'cli-config');
const CLI = path.join(__dirname, '../../dist/src/cli/main.js');
const outputs: string[] = [];

/** The CLI with standard input and this test's config dir; every output is kept to grep for the password. */
function shoal(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [CLI, '-H', node.socket, ...args], {
    encoding: 'utf8',
    input,
    env: { ...process.env, SHOAL_CONFIG: configDir },
    timeout: 120_000,
  });
  outputs.push(r.stdout, r.stderr);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
function ok(...args: string[]): string {
  const r = shoal(args);
  if (r.code !== 0) throw new Error(`shoal ${args.join(' ')} exited ${r.code}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}
const tasks = (service: string) => tasksOf(node, service);
const inspect = (service: string): Service__Output => JSON.parse(ok('service', 'inspect', service))[0];

beforeAll(async () => {
  const tar = buildTestImage(node.dir);
  await registry.start();
  registry.push(`oci-archive:${tar}`, 'private/app:1');
  node.daemonArgs = [`--insecure-registry=${registry.host}`];
  await node.start();
  node.ok('init');
}, NODE_TEST_TIMEOUT_MS);

const login = () => expect(shoal(['login', registry.host, '-u', 'ci', '--password-stdin'], `${PASSWORD}\n`).code).toBe(0);

// Each test starts logged out, with no service and no image; and no output so far holds the password.
afterEach(async () => {
  try {
    const log = fs.readFileSync(path.join(node.dir, 'shoald.log'), 'utf8');
    expect(log.length).toBeGreaterThan(0);
    const encoded = Buffer.from(`ci:${PASSWORD}`).toString('base64');
    for (const text of [log, ...outputs.splice(0)]) {
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(encoded);
    }
  } finally {
    fs.rmSync(configDir, { recursive: true, force: true });
    await node.empty();
    node.ok('image', 'prune', '-a');
  }
  expect(node.ok('image', 'ls', '-q')).toBe('');
}, NODE_TEST_TIMEOUT_MS);

afterAll(async () => {
  closeApi(node);
  await allSettledOrThrow([node.destroy(), registry.destroy()]);
}, NODE_TEST_TIMEOUT_MS);

describe('registry credentials', { timeout: NODE_TEST_TIMEOUT_MS }, () => {
  it('login checks the password, stores it 0600, and logout removes it', () => {
    const wrong = shoal(['login', registry.host, '-u', 'ci', '--password-stdin'], 'not-the-password\n');
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/refused the login: unauthorized/);
    expect(fs.existsSync(path.join(configDir, 'config.json'))).toBe(false);

    const res = shoal(['login', registry.host, '-u', 'ci', '--password-stdin'], `${PASSWORD}\n`);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/Login Succeeded/);
    const file = path.join(configDir, 'config.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(configDir).mode & 0o777).toBe(0o700);
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).auths[registry.host].auth).toBe(Buffer.from(`ci:${PASSWORD}`).toString('base64'));

    expect(ok('logout', registry.host)).toMatch(/Removing login credentials/);
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).auths[registry.host]).toBeUndefined();
  });

  it('image pull uses the stored credentials, and fails without them', () => {
    const ref = `${registry.host}/private/app:1`;
    const refused = shoal(['image', 'pull', ref]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/unauthorized.*shoal login/);
    expect(shoal(['login', registry.host, '-u', 'ci', '--password-stdin'], PASSWORD).code).toBe(0);
    expect(ok('image', 'pull', ref)).toMatch(/^Digest: sha256:/m);
  });

  it('a service without --with-registry-auth is rejected as unauthorized; with it, it is pinned and runs', async () => {
    const ref = `${registry.host}/private/app:1`;
    login();
    ok('service', 'create', '-d', '--name', 'noauth', '--restart-max-attempts', '0', ref, ...WORKLOAD);
    expect(inspect('noauth').spec!.task_template!.container!.image).toBe(ref);
    await expect
      .poll(async () => (await tasks('noauth')).map((t) => t.status!.err).join('\n'), { timeout: NODE_WAIT_MS })
      .toMatch(/pulling image .* failed: registry .* refused .*unauthorized.*needs credentials/);

    ok('service', 'create', '--name', 'priv', '--replicas', '2', '--with-registry-auth', ref, ...WORKLOAD);
    const image = inspect('priv').spec!.task_template!.container!.image;
    expect(image).toMatch(/@sha256:[a-f0-9]{64}$/);
    expect((await tasks('priv')).filter((t) => t.status!.state === 'RUNNING')).toHaveLength(2);

    // In use, the image survives prune -a; once unused it goes, and scaling up pulls again with the
    // credentials the service was created with.
    expect(ok('image', 'prune', '-a')).not.toMatch(/Deleted/);
    ok('service', 'scale', 'priv=0');
    await waitFor(() => node.containerIds().length === 0, { what: 'the containers of priv to be removed', timeoutMs: NODE_WAIT_MS });
    expect(ok('image', 'prune', '-a')).toMatch(/Deleted: sha256:[a-f0-9]{64}\nTotal reclaimed space: [1-9][\d.]*MiB/);
    expect(JSON.parse(ok('image', 'ls', '--format', 'json'))).toEqual([]);
    ok('service', 'scale', 'priv=2');
    expect((await tasks('priv')).filter((t) => t.status!.state === 'RUNNING' && t.desired_state === 'RUNNING')).toHaveLength(2);
    ok('service', 'update', '--with-registry-auth', '--env-add', 'X=2', 'priv');
    expect((await tasks('priv')).filter((t) => t.status!.state === 'RUNNING' && t.desired_state === 'RUNNING')).toHaveLength(2);

    // Everything a user or operator can read: none of it holds the password.
    ok('service', 'ls', '--format', 'json');
    ok('service', 'ps', 'priv', '--format', 'json', '--no-trunc');
    ok('service', 'inspect', 'priv');
    ok('image', 'ls', '--format', 'json');
  });

  it('--with-registry-auth without a login says to log in', () => {
    const res = shoal(['service', 'create', '-d', '--name', 'x', '--with-registry-auth', '127.0.0.1:9/a/b:1']);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/no credentials stored for registry 127\.0\.0\.1:9; run `shoal login 127\.0\.0\.1:9`/);
  });
});
