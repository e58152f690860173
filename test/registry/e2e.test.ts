import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { buildTestImage, TestNode } from '../helpers/test-node';
import { TestRegistry } from './registry';

// One real node (etcd, runc, conmon) and one real registry, both on loopback.
const node = new TestNode();
const registry = new TestRegistry();
const other = new TestRegistry();

const tasks = (service: string): Task__Output[] => JSON.parse(node.ok('service', 'ps', service, '--format', 'json'));
const inspect = (service: string): Service__Output => JSON.parse(node.ok('service', 'inspect', service))[0];
const WORKLOAD = ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 0.2; done'];

beforeAll(async () => {
  const tar = buildTestImage(node.dir);
  await Promise.all([registry.start(), other.start()]);
  registry.push(`oci-archive:${tar}`, 'team/web:1.4');
  other.push(`oci-archive:${tar}`, 'solo/app:2');
  node.daemonArgs = [`--insecure-registry=${registry.host}`];
  await node.start();
  node.ok('init');
});

afterAll(async () => {
  await Promise.allSettled([node.destroy(), registry.destroy(), other.destroy()]);
});

describe('images from a registry', () => {
  it('pulls by hand, over plain HTTP only where allowed', () => {
    const ref = `${registry.host}/team/web:1.4`;
    const out = node.ok('image', 'pull', ref);
    expect(out).toMatch(/^Digest: sha256:[a-f0-9]{64}$/m);
    expect(node.ok('image', 'ls')).toContain(`${registry.host}/team/web`);

    // Not marked insecure on the daemon: HTTPS, which a plain-HTTP registry cannot speak.
    const refused = node.shoal('image', 'pull', `${other.host}/solo/app:2`);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/unreachable.*TLS/);
    expect(node.ok('image', 'pull', '--insecure-registry', `${other.host}/solo/app:2`)).toMatch(/^Digest: /m);
  });

  it('pins a tag to its digest at create, and runs every replica from one pull', () => {
    node.ok('image', 'rm', `${registry.host}/team/web:1.4`);
    const ref = `${registry.host}/team/web:1.4`;
    node.ok('service', 'create', '--name', 'web', '--replicas', '3', ref, ...WORKLOAD);
    const image = inspect('web').spec!.task_template!.container!.image;
    expect(image).toMatch(new RegExp(`^${ref.replace(/\./g, '\\.')}@sha256:[a-f0-9]{64}$`));
    const running = tasks('web').filter((t) => t.status!.state === 'RUNNING');
    expect(running).toHaveLength(3);
    for (const t of running) expect(t.spec!.container!.image).toBe(image);
    const images = JSON.parse(node.ok('image', 'ls', '--format', 'json')) as { id: string }[];
    expect(images.filter((i) => i.id)).toHaveLength(1);
    node.ok('service', 'rm', 'web');
  });

  it('rejects tasks whose image is not in the registry, with the registry’s reason', async () => {
    node.ok('service', 'create', '-d', '--name', 'missing', '--restart-max-attempts', '0', `${registry.host}/team/web:nope`, ...WORKLOAD);
    // The tag could not be pinned, so it is kept.
    expect(inspect('missing').spec!.task_template!.container!.image).toBe(`${registry.host}/team/web:nope`);
    await expect
      .poll(() => tasks('missing').map((t) => t.status!.err).join('\n'), { timeout: 20_000 })
      .toMatch(/pulling image .*:nope failed: manifest .* not found in registry/);
    expect(node.ok('service', 'ps', 'missing')).toMatch(/Rejected/);
    node.ok('service', 'rm', 'missing');
  });

  it('keeps the tag when the registry is unreachable, and says so to the operator and in the log', () => {
    const r = node.shoal('service', 'create', '-d', '--name', 'away', '--restart-max-attempts', '0', '127.0.0.1:1/team/web:1', ...WORKLOAD);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^warning: image 127\.0\.0\.1:1\/team\/web:1 could not be resolved to a digest \(.+\); keeping the tag/m);
    expect(inspect('away').spec!.task_template!.container!.image).toBe('127.0.0.1:1/team/web:1');
    const log = fs.readFileSync(path.join(node.dir, 'shoald.log'), 'utf8');
    expect(log).toMatch(/could not be resolved to a digest .*; keeping the tag/);
    node.ok('service', 'rm', 'away');
  });
});
