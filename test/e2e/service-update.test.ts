import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import { TestRegistry } from '../registry/registry';
import { configuredImage, testImage } from './images';
import { cgroupLimits, nextTaskLogging, runningOf, tasksOf } from './observe';
import { useE2eNode } from './use-node';
import { thenIdle } from '../helpers/workloads';

// A private registry (basic auth) the node may speak plain HTTP to, and one node.
const PASSWORD = 'pw-update-e2e';
const registry = new TestRegistry({ username: 'ci', password: PASSWORD });
beforeAll(() => registry.start());
afterAll(() => registry.destroy());
const node = useE2eNode({ daemonArgs: () => [`--insecure-registry=${registry.host}`] });

/** Runs `script` once, then idles until SIGTERM. */
const inspect = (service: string): Service__Output => JSON.parse(node.ok('service', 'inspect', service))[0];
const MARKED = 'echo "mark=${MARK-none}"';

let marked: string;
let args: string;
const savedConfig = process.env.SHOAL_CONFIG;

beforeAll(() => {
  // An image that differs from shoal-test only in its config, so a container shows which one it runs.
  marked = configuredImage(node, 'shoal-e2e:marked', { Env: ['PATH=/bin', 'MARK=v2'] });
  node.ok('image', 'load', marked);
  args = configuredImage(node, 'shoal-e2e:args', { Entrypoint: [...thenIdle('echo "args: $*"'), 'argv0'], Cmd: [] });
  node.ok('image', 'load', args);
  // The CLI user's credentials live in this file's own config dir.
  process.env.SHOAL_CONFIG = path.join(node.dir, 'cli-config');
});

afterAll(() => {
  if (savedConfig === undefined) delete process.env.SHOAL_CONFIG;
  else process.env.SHOAL_CONFIG = savedConfig;
});

// Each `service update` waits out the update monitor (5 s by default); what is tested here does not depend on it.
const QUICK = ['--update-monitor', '1s'];

describe('service update', () => {
  it('--image replaces the task with one running the new image', async () => {
    node.ok('service', 'create', ...QUICK, '--name', 'img', 'shoal-test:latest', ...thenIdle(MARKED));
    const first = await nextTaskLogging(node, 'img', /^mark=none$/);
    node.ok('service', 'update', '--image', 'shoal-e2e:marked', 'img');
    const second = await nextTaskLogging(node, 'img', /^mark=v2$/, first.id);
    expect(second.spec!.container!.image).toBe('shoal-e2e:marked');
    expect(inspect('img').spec!.task_template!.container!.image).toBe('shoal-e2e:marked');
    expect((await runningOf(node, 'img')).map((t) => t.id)).toEqual([second.id]);
    expect((await tasksOf(node, 'img')).find((t) => t.id === first.id)!.status!.state).toBe('SHUTDOWN');
  });

  it('--args replaces the arguments given to the image entrypoint', async () => {
    node.ok('service', 'create', ...QUICK, '--name', 'args', 'shoal-e2e:args', 'one', 'two');
    const first = await nextTaskLogging(node, 'args', /^args: one two$/);
    node.ok('service', 'update', '--args', 'three four  five', 'args');
    await nextTaskLogging(node, 'args', /^args: three four five$/, first.id);
    expect(inspect('args').spec!.task_template!.container!.args).toEqual(['three', 'four', 'five']);
  });

  it('--env-rm removes the variable from the container and the spec, keeping the others', async () => {
    node.ok('service', 'create', ...QUICK, '--name', 'env', '-e', 'KEEP=1', '-e', 'DROP=2', 'shoal-test:latest', ...thenIdle('echo "KEEP=${KEEP-unset} DROP=${DROP-unset}"'));
    const first = await nextTaskLogging(node, 'env', /^KEEP=1 DROP=2$/);
    node.ok('service', 'update', '--env-rm', 'DROP', 'env');
    await nextTaskLogging(node, 'env', /^KEEP=1 DROP=unset$/, first.id);
    expect(inspect('env').spec!.task_template!.container!.env).toEqual(['KEEP=1']);
  });

  it('limits reach the new container’s cgroups', async () => {
    node.ok('service', 'create', ...QUICK, '--name', 'lim', 'shoal-test:latest', ...thenIdle('echo up'));
    const first = await nextTaskLogging(node, 'lim', /^up$/);
    expect(cgroupLimits(first.status!.container!.pid)).toEqual({ memory: null, cpus: null, pids: null });

    node.ok('service', 'update', '--limit-memory', '32m', '--limit-cpu', '0.25', '--limit-pids', '50', 'lim');
    const second = await nextTaskLogging(node, 'lim', /^up$/, first.id);
    expect(cgroupLimits(second.status!.container!.pid)).toEqual({ memory: 32 * 1024 * 1024, cpus: 0.25, pids: 50 });

    node.ok('service', 'update', '--limit-memory', '48m', 'lim');
    const third = await nextTaskLogging(node, 'lim', /^up$/, second.id);
    expect(cgroupLimits(third.status!.container!.pid)).toEqual({ memory: 48 * 1024 * 1024, cpus: 0.25, pids: 50 });
  });

  it('--constraint-add makes the task unplaceable with the reason, --constraint-rm places it again', async () => {
    const hostname = os.hostname();
    node.ok('service', 'create', ...QUICK, '--name', 'pin', 'shoal-test:latest', ...thenIdle('echo up'));
    const first = await nextTaskLogging(node, 'pin', /^up$/);
    const constraint = `node.hostname!=${hostname}`;
    node.ok('service', 'update', '-d', '--constraint-add', constraint, 'pin');
    await expect
      .poll(() => node.ok('service', 'ps', '--no-trunc', 'pin'), { timeout: 20_000, message: 'the new task to be pending with the constraint as its reason' })
      .toMatch(new RegExp(`Running\\s+Pending .*"no suitable node \\(constraint ${constraint} not satisfied on 1 node\\)"`));
    expect(await runningOf(node, 'pin')).toEqual([]);
    expect(inspect('pin').spec!.task_template!.placement!.constraints).toEqual([constraint]);

    node.ok('service', 'update', '--constraint-rm', constraint, 'pin');
    await nextTaskLogging(node, 'pin', /^up$/, first.id);
    expect(inspect('pin').spec!.task_template!.placement!.constraints).toEqual([]);
  });

  it('an update without --with-registry-auth keeps the service’s credentials for the next pull', async () => {
    // Version 2 exists only in the registry: the task can only get it by pulling.
    registry.push(`oci-archive:${testImage(node)}`, 'private/app:1');
    registry.push(`oci-archive:${configuredImage(node, 'private-app:2', { Env: ['PATH=/bin', 'MARK=private2'] })}`, 'private/app:2');
    const repo = `${registry.host}/private/app`;
    node.ok('login', registry.host, '-u', 'ci', '-p', PASSWORD);
    node.ok('service', 'create', ...QUICK, '--name', 'priv', '--with-registry-auth', `${repo}:1`, ...thenIdle(MARKED));
    const first = await nextTaskLogging(node, 'priv', /^mark=none$/);
    // The CLI forgets the password: what the next pull uses can only be what the service kept.
    node.ok('logout', registry.host);

    node.ok('service', 'update', '--image', `${repo}:2`, 'priv');
    const second = await nextTaskLogging(node, 'priv', /^mark=private2$/, first.id);
    const pinned = /^(.+):2@(sha256:[a-f0-9]{64})$/.exec(second.spec!.container!.image);
    expect(pinned?.[1]).toBe(repo);
    const images = JSON.parse(node.ok('image', 'ls', '--format', 'json')) as { digest: string }[];
    expect(images.map((i) => i.digest)).toContain(pinned![2]);
  });
});
