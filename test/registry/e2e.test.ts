import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import { parseReference } from '../../src/images/reference';
import { RegistryClient } from '../../src/images/registry/client';
import { buildTestImage, NODE_TEST_TIMEOUT_MS, NODE_WAIT_MS, TestNode } from '../helpers/test-node';
import { allSettledOrThrow } from '../helpers/wait';
import { TestRegistry } from './registry';
import { IDLE as WORKLOAD } from '../helpers/workloads';
import { closeApi, tasksOf } from '../e2e/observe';

// One real node (etcd, runc, conmon) and real registries, all on loopback.
const node = new TestNode();
const registry = new TestRegistry();
const other = new TestRegistry();

const tasks = (service: string) => tasksOf(node, service);
const inspect = (service: string): Service__Output => JSON.parse(node.ok('service', 'inspect', service))[0];

beforeAll(async () => {
  const tar = buildTestImage(node.dir);
  await Promise.all([registry.start(), other.start()]);
  registry.push(`oci-archive:${tar}`, 'team/web:1.4');
  other.push(`oci-archive:${tar}`, 'solo/app:2');
  node.daemonArgs = [`--insecure-registry=${registry.host}`];
  await node.start();
  node.ok('init');
}, NODE_TEST_TIMEOUT_MS);

// Each test starts with no service and no image on the node.
afterEach(async () => {
  await node.empty();
  node.ok('image', 'prune', '-a');
  expect(node.ok('image', 'ls', '-q')).toBe('');
}, NODE_TEST_TIMEOUT_MS);

afterAll(async () => {
  closeApi(node);
  await allSettledOrThrow([node.destroy(), registry.destroy(), other.destroy()]);
}, NODE_TEST_TIMEOUT_MS);

describe('images from a registry', { timeout: NODE_TEST_TIMEOUT_MS }, () => {
  it('pulls by hand, over plain HTTP only where allowed', () => {
    const ref = `${registry.host}/team/web:1.4`;
    const out = node.ok('image', 'pull', ref);
    expect(out).toMatch(/^Digest: sha256:[a-f0-9]{64}$/m);
    expect(node.ok('image', 'ls')).toContain(`${registry.host}/team/web`);

    // Not marked insecure on the daemon: HTTPS, which a plain-HTTP registry cannot speak.
    expect(node.fails('image', 'pull', `${other.host}/solo/app:2`)).toMatch(/unreachable.*TLS/);
    expect(node.ok('image', 'pull', '--insecure-registry', `${other.host}/solo/app:2`)).toMatch(/^Digest: /m);
  });

  it('pins a tag to its digest at create, and runs every replica from one pull', async () => {
    const ref = `${registry.host}/team/web:1.4`;
    const pushed = await new RegistryClient({ insecureRegistries: [registry.host] }).resolve(parseReference(ref));
    const blobs = [pushed.config.digest, ...pushed.layers.map((l) => l.digest)];
    const before = registry.blobGets();
    node.ok('service', 'create', '--name', 'web', '--replicas', '3', ref, ...WORKLOAD);
    const image = inspect('web').spec!.task_template!.container!.image;
    expect(image).toBe(`${ref}@${pushed.digest}`);
    const running = (await tasks('web')).filter((t) => t.status!.state === 'RUNNING');
    expect(running).toHaveLength(3);
    for (const t of running) expect(t.spec!.container!.image).toBe(image);
    // Counted at the registry: each blob of the image downloaded once, and nothing else.
    expect(Object.fromEntries(registry.blobGets(before))).toEqual(Object.fromEntries(blobs.map((d) => [d, 1])));
    expect(JSON.parse(node.ok('image', 'ls', '--format', 'json'))).toHaveLength(1);
  });

  it('rejects tasks whose image is not in the registry, with the registry’s reason', async () => {
    node.ok('service', 'create', '-d', '--name', 'missing', '--restart-max-attempts', '0', `${registry.host}/team/web:nope`, ...WORKLOAD);
    // The tag could not be pinned, so it is kept.
    expect(inspect('missing').spec!.task_template!.container!.image).toBe(`${registry.host}/team/web:nope`);
    await expect
      .poll(async () => (await tasks('missing')).map((t) => t.status!.err).join('\n'), { timeout: NODE_WAIT_MS })
      .toMatch(/pulling image .*:nope failed: manifest .* not found in registry/);
    expect(node.ok('service', 'ps', 'missing')).toMatch(/Rejected/);
  });

  it('keeps the tag when the registry is unreachable, and says so to the operator and in the log', () => {
    const r = node.shoal('service', 'create', '-d', '--name', 'away', '--restart-max-attempts', '0', '127.0.0.1:1/team/web:1', ...WORKLOAD);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^warning: image 127\.0\.0\.1:1\/team\/web:1 could not be resolved to a digest \(.+\); keeping the tag/m);
    expect(inspect('away').spec!.task_template!.container!.image).toBe('127.0.0.1:1/team/web:1');
    const log = fs.readFileSync(path.join(node.dir, 'shoald.log'), 'utf8');
    expect(log).toMatch(/127\.0\.0\.1:1\/team\/web:1 could not be resolved to a digest .*; keeping the tag/);
  });
});
