import { status } from '@grpc/grpc-js';
import * as http from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest';
import { parseReference } from '../../src/images/reference';
import { MEDIA, OUR_ARCH, RegistryClient } from '../../src/images/registry/client';
import { ImageStore } from '../../src/images/store';
import { leftovers, testMarker } from '../helpers/runtime';
import { allSettledOrThrow } from '../helpers/wait';
import { buildTestImage, ociArchive, tarOf } from '../images/helpers';
import { refused } from './refused';
import { TestRegistry } from './registry';
import { TokenServer } from './token-server';

// An image index with two platforms, and a registry that wants bearer tokens from a token server.
const PASSWORD = 'tok-Pw-77-secret';
const marker = testMarker();
let work: string;
let tokens: TokenServer;
const open = new TestRegistry();
let guarded: TestRegistry;
let root: string;

const client = (creds?: { username: string; password: string }) =>
  new RegistryClient({ insecureRegistries: [open.host, guarded.host], credentials: () => creds, idleMs: 5_000 });

/** PUTs a manifest or index as the registry's API does. */
function putManifest(registry: TestRegistry, repo: string, ref: string, mediaType: string, body: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: registry.port, method: 'PUT', path: `/v2/${repo}/manifests/${ref}`, headers: { 'Content-Type': mediaType, 'Content-Length': body.length } },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`PUT manifest: HTTP ${res.statusCode} ${text}`))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

let ours: { digest: string; configDigest: string };
let indexDigest: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), `${marker}-index-token-`));
  tokens = new TokenServer(join(work, 'token'), { ci: PASSWORD });
  await tokens.start();
  guarded = new TestRegistry({ username: 'ci', password: PASSWORD }, { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.rootCertBundle });
  await Promise.all([open.start(), guarded.start()]);

  // Two platform variants: the busybox test image (this machine's arch) and a foreign one.
  const native = buildTestImage(join(work, 'native.tar'), 'oci');
  const foreignDir = join(work, 'foreign');
  ociArchive(foreignDir, join(work, 'foreign.tar'), [{ tar: tarOf(join(foreignDir, 'rootfs'), { 'etc/variant': 'riscv64' }) }]);
  open.push(`oci-archive:${native}`, 'multi:native');
  open.push(`oci-archive:${join(work, 'foreign.tar')}`, 'multi:foreign');
  const c = client();
  const ref = parseReference(`${open.host}/multi:native`);
  const [n, f] = [await c.getManifest(ref, 'native'), await c.getManifest(ref, 'foreign')];
  ours = { digest: n.digest, configDigest: (JSON.parse(n.bytes.toString()) as { config: { digest: string } }).config.digest };
  // The foreign variant first, so picking the first entry would be wrong.
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: [
        { mediaType: f.mediaType, digest: f.digest, size: f.bytes.length, platform: { os: 'linux', architecture: 'riscv64' } },
        { mediaType: n.mediaType, digest: n.digest, size: n.bytes.length, platform: { os: 'linux', architecture: OUR_ARCH } },
      ],
    }),
  );
  await putManifest(open, 'multi', 'latest', MEDIA.ociIndex, index);
  indexDigest = (await c.getManifest(ref, 'latest')).digest;

  await guarded.pushAsync(`oci-archive:${native}`, 'private/app:1');
});

afterAll(async () => {
  try {
    await allSettledOrThrow([open.destroy(), guarded?.destroy(), tokens?.close()]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  expect(leftovers(marker)).toEqual([]);
});

beforeEach(() => {
  root = mkdtempSync(join(work, 'store-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('an image index with several platforms', () => {
  it(`picks linux/${OUR_ARCH}, and pins the index's digest`, async () => {
    const c = client();
    const ref = parseReference(`${open.host}/multi:latest`);
    const resolved = await c.resolve(ref);
    expect(resolved.digest).toBe(indexDigest);
    expect(resolved.manifest.digest).toBe(ours.digest);
    expect(resolved.config.digest).toBe(ours.configDigest);
    expect(await c.resolveDigest(ref)).toBe(indexDigest);

    const store = new ImageStore(root);
    const rec = await store.pull(`${open.host}/multi:latest`, c);
    expect(rec.id).toBe(ours.configDigest);
    expect(rec.repoDigest).toBe(`${open.host}/multi@${indexDigest}`);
    const img = await store.resolve(`${open.host}/multi@${indexDigest}`);
    expect(img!.id).toBe(ours.configDigest);
    expect(existsSync(join(img!.layers[0], 'bin/busybox'))).toBe(true);
  });

  it(`picks linux/${OUR_ARCH} from a Docker manifest list too`, async () => {
    const c = client();
    const list = await c.getManifest(parseReference(`${open.host}/multi:latest`), 'latest');
    const body = { ...JSON.parse(list.bytes.toString()), mediaType: MEDIA.dockerList };
    await putManifest(open, 'multi', 'docker-list', MEDIA.dockerList, Buffer.from(JSON.stringify(body)));
    const resolved = await c.resolve(parseReference(`${open.host}/multi:docker-list`));
    expect(resolved.manifest.digest).toBe(ours.digest);
    expect((await new ImageStore(root).pull(`${open.host}/multi:docker-list`, c)).id).toBe(ours.configDigest);
  });

  it('says which platforms an index has when ours is not among them', async () => {
    const c = client();
    const foreign = await c.getManifest(parseReference(`${open.host}/multi:foreign`), 'foreign');
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.ociIndex,
        manifests: [{ mediaType: foreign.mediaType, digest: foreign.digest, size: foreign.bytes.length, platform: { os: 'linux', architecture: 'riscv64' } }],
      }),
    );
    await putManifest(open, 'multi', 'foreign-only', MEDIA.ociIndex, index);
    await refused(new ImageStore(root).pull(`${open.host}/multi:foreign-only`, c), status.NOT_FOUND, new RegExp(`no variant for linux/${OUR_ARCH} \\(it has linux/riscv64\\)`));
  });
});

describe('bearer-token auth', () => {
  it('answers the registry’s challenge with a token from its token server', async () => {
    tokens.requests.length = 0;
    const ref = `${guarded.host}/private/app:1`;
    const rec = await new ImageStore(root).pull(ref, client({ username: 'ci', password: PASSWORD }));
    expect(rec.tags).toEqual([ref]);
    // The challenge named the service and the scope; the token was asked for once and reused for every blob.
    expect(tokens.requests).toEqual([{ service: tokens.service, scopes: ['repository:private/app:pull'], user: 'ci' }]);
  });

  it('refuses a wrong password without showing it, and says when credentials are missing', async () => {
    const ref = `${guarded.host}/private/app:1`;
    const wrong = await refused(
      new ImageStore(root).pull(ref, client({ username: 'ci', password: 'wrong-Pw-123' })),
      status.UNAUTHENTICATED,
      /registry 127\.0\.0\.1:\d+ refused .*unauthorized.*username or password is wrong/,
    );
    expect(`${wrong.message}\n${wrong.stack}`).not.toContain('wrong-Pw-123');
    // Anonymous: a token with no access, which the registry then refuses.
    await refused(new ImageStore(root).pull(ref, client()), status.UNAUTHENTICATED, /refused .*unauthorized.*needs credentials/);
    expect(existsSync(join(root, 'images.json'))).toBe(false);
  });

  it('checks a login through the token server', async () => {
    await client({ username: 'ci', password: PASSWORD }).checkLogin(guarded.host);
    const err = await refused(client({ username: 'ci', password: 'nope-Pw-9' }).checkLogin(guarded.host), status.UNAUTHENTICATED, /refused the login/);
    expect(err.message).not.toContain('nope-Pw-9');
  });
});
