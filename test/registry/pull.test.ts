import { status } from '@grpc/grpc-js';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseReference } from '../../src/images/reference';
import { RegistryClient } from '../../src/images/registry/client';
import { ImageStore } from '../../src/images/store';
import { buildDerivedImage } from '../helpers/derived-image';
import { leftovers, testMarker } from '../helpers/runtime';
import { allSettledOrThrow } from '../helpers/wait';
import { buildTestImage } from '../images/helpers';
import { refused } from './refused';
import { StallingProxy, TestRegistry } from './registry';

const marker = testMarker();
let work: string;
const open = new TestRegistry();
const secured = new TestRegistry({ username: 'ci', password: 's3cret-pw' });
let ociTar: string;
let root: string;

/** Blob files in the store, and anything left in its tmp dir. */
function blobs(): string[] {
  return readdirSync(join(root, 'blobs/sha256')).sort();
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), `${marker}-pull-`));
  ociTar = buildTestImage(join(work, 'oci.tar'), 'oci');
  await Promise.all([open.start(), secured.start()]);
  open.push(`oci-archive:${ociTar}`, 'shoal-test:1');
  open.push(`oci-archive:${ociTar}`, 'team/web:1.4');
  const derived = buildDerivedImage(work, { layers: 1, layerBytes: 64 << 10, seed: 'derived', refName: 'derived' });
  open.push(`oci:${derived.layout}:derived`, 'team/derived:1');
  open.push(`oci-archive:${ociTar}`, 'docker/format:1', { dockerFormat: true });
  secured.push(`oci-archive:${ociTar}`, 'private/app:1');
});

afterAll(async () => {
  try {
    await allSettledOrThrow([open.destroy(), secured.destroy()]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  expect(leftovers(marker)).toEqual([]);
});

beforeEach(() => {
  root = mkdtempSync(join(work, 'store-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

const client = (opts: { registries?: TestRegistry[]; creds?: { username: string; password: string } } = {}) =>
  new RegistryClient({
    insecureRegistries: (opts.registries ?? [open, secured]).map((r) => r.host),
    credentials: () => opts.creds,
    idleMs: 5_000,
  });

describe('registry client', () => {
  it('resolves a tag to its manifest digest, and the manifest by that digest', async () => {
    const c = client();
    const ref = parseReference(`${open.host}/shoal-test:1`);
    const resolved = await c.resolve(ref);
    expect(resolved.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(resolved.layers).toHaveLength(1);
    expect(await c.resolveDigest(ref)).toBe(resolved.digest);
    const byDigest = await c.getManifest(ref, resolved.digest);
    expect(byDigest.digest).toBe(resolved.digest);
  });

  it('speaks HTTPS to a registry not marked insecure, and says why it fails', async () => {
    const c = new RegistryClient({ idleMs: 5_000 });
    await refused(c.resolve(parseReference(`${open.host}/shoal-test:1`)), status.UNAVAILABLE, /unreachable.*(TLS|SSL|wrong version|EPROTO)/i);
  });

  it('says a registry that is not there is unreachable', async () => {
    const c = new RegistryClient({ insecureRegistries: ['127.0.0.1:1'], idleMs: 5_000 });
    await refused(c.resolve(parseReference('127.0.0.1:1/shoal-test:1')), status.UNAVAILABLE, /registry 127\.0\.0\.1:1 is unreachable.*connection refused/);
  });
});

describe('pull', () => {
  it('pulls by tag, and the image runs from the store', async () => {
    const store = new ImageStore(root);
    const ref = `${open.host}/shoal-test:1`;
    const rec = await store.pull(ref, client());
    expect(rec.tags).toEqual([ref]);
    const img = await store.resolve(ref);
    expect(img!.id).toBe(rec.id);
    expect(img!.config.cmd).toEqual(['sh']);
    expect(existsSync(join(img!.layers[0], 'bin/busybox'))).toBe(true);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });

  it('pulls by digest, and finds it again by that digest', async () => {
    const c = client();
    const digest = await c.resolveDigest(parseReference(`${open.host}/shoal-test:1`));
    const store = new ImageStore(root);
    const ref = `${open.host}/shoal-test@${digest}`;
    const rec = await store.pull(ref, c);
    expect(rec.tags).toEqual([]);
    expect(rec.digest).toBe(digest);
    expect((await store.resolve(ref))!.id).toBe(rec.id);
  });

  it('stores shared layers once, and downloads once for concurrent pulls', async () => {
    const c = client();
    const fetch = vi.spyOn(c, 'fetchBlob');
    const store = new ImageStore(root);
    const refs = [`${open.host}/shoal-test:1`, `${open.host}/team/web:1.4`];
    const recs = await Promise.all([...refs, ...refs, ...refs].map((r) => store.pull(r, c)));
    expect(new Set(recs.map((r) => r.id)).size).toBe(1);
    // One config and one layer, each fetched once, whatever the number of pulls.
    expect(fetch).toHaveBeenCalledTimes(2);
    expect(blobs()).toHaveLength(3);
    expect((await store.list())[0].tags).toEqual(refs.sort());
  });

  it('pulls a second image that shares a layer: only its own blobs download, the shared layer is kept once', async () => {
    const c = client();
    const fetch = vi.spyOn(c, 'fetchBlob');
    const store = new ImageStore(root);
    const base = await store.pull(`${open.host}/shoal-test:1`, c);
    const fetchedForBase = fetch.mock.calls.map((call) => call[1].digest);
    const second = await store.pull(`${open.host}/team/derived:1`, c);
    expect(second.id).not.toBe(base.id);
    const fetchedForSecond = fetch.mock.calls.slice(fetchedForBase.length).map((call) => call[1].digest);
    // skopeo compresses layers on push, so digests are the registry's, not the layout's: the
    // second pull fetches its config and its own layer, and nothing the first one fetched.
    expect(fetchedForSecond).toHaveLength(2);
    expect(fetchedForSecond.filter((d) => fetchedForBase.includes(d))).toEqual([]);
    const [a, b] = await Promise.all([store.resolve(base.id), store.resolve(second.id)]);
    expect(b!.layers).toHaveLength(2);
    expect(b!.layers[0]).toBe(a!.layers[0]);
    expect(readdirSync(join(root, 'layers'))).toHaveLength(2);
  });

  it('pulls an image stored as a Docker v2 schema 2 manifest', async () => {
    const c = client();
    const { manifest } = await c.resolve(parseReference(`${open.host}/docker/format:1`));
    expect(manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    const store = new ImageStore(root);
    const rec = await store.pull(`${open.host}/docker/format:1`, c);
    const image = await store.resolve(rec.id);
    expect(existsSync(join(image!.layers[0], 'bin', 'busybox'))).toBe(true);
  });

  it('says a missing tag is not found', async () => {
    const store = new ImageStore(root);
    await refused(store.pull(`${open.host}/shoal-test:nope`, client()), status.NOT_FOUND, /manifest .*shoal-test:nope not found in registry 127\.0\.0\.1:\d+ \(manifest unknown\)/);
    await refused(store.pull(`${open.host}/nosuch/repo:1`, client()), status.NOT_FOUND, /not found in registry/);
    expect(blobs()).toEqual([]);
  });

  it('pulls with basic auth, and refuses a wrong password without showing it', async () => {
    const ref = `${secured.host}/private/app:1`;
    await refused(new ImageStore(root).pull(ref, client()), status.UNAUTHENTICATED, /refused .*unauthorized.*needs credentials/);
    const wrong = await refused(
      new ImageStore(root).pull(ref, client({ creds: { username: 'ci', password: 'wrong-pw' } })),
      status.UNAUTHENTICATED,
      /registry 127\.0\.0\.1:\d+ refused .*unauthorized.*username or password is wrong/,
    );
    expect(wrong.message).not.toContain('wrong-pw');
    expect(wrong.stack).not.toContain('wrong-pw');
    const rec = await new ImageStore(root).pull(ref, client({ creds: { username: 'ci', password: 's3cret-pw' } }));
    expect(rec.tags).toEqual([ref]);
  });

  it('refuses a tampered blob and keeps nothing of it', async () => {
    const c = client();
    const { layers } = await c.resolve(parseReference(`${open.host}/shoal-test:1`));
    const file = open.blobFile(layers[0].digest);
    const original = readFileSync(file);
    const bad = Buffer.from(original);
    bad[bad.length >> 1] ^= 0xff;
    writeFileSync(file, bad);
    try {
      const store = new ImageStore(root);
      await refused(store.pull(`${open.host}/shoal-test:1`, c), status.DATA_LOSS, /blob sha256:[a-f0-9]+ .*does not match its digest/);
      expect(blobs()).not.toContain(layers[0].digest.slice(7));
      expect(readdirSync(join(root, 'tmp'))).toEqual([]);
      expect(await store.resolve(`${open.host}/shoal-test:1`)).toBeNull();
    } finally {
      writeFileSync(file, original);
    }
  });

  it('leaves no partial blob when the registry dies mid-pull, and pulls again once it is back', async () => {
    const c0 = client();
    const { layers } = await c0.resolve(parseReference(`${open.host}/shoal-test:1`));
    const proxy = new StallingProxy(open.port, `/blobs/${layers[0].digest}`, 64 << 10);
    await proxy.start();
    try {
      const host = `127.0.0.1:${proxy.port}`;
      const c = new RegistryClient({ insecureRegistries: [host], idleMs: 10_000 });
      const store = new ImageStore(root);
      const pulling = store.pull(`${host}/shoal-test:1`, c);
      await proxy.stalled;
      // Part of the layer is on disk now.
      await expect.poll(() => readdirSync(join(root, 'tmp')).some((n) => n.startsWith('blob-'))).toBe(true);
      await open.kill();
      await refused(pulling, status.UNAVAILABLE, /registry 127\.0\.0\.1:\d+ is unreachable while fetching blob .*connection broke/);
      expect(blobs()).not.toContain(layers[0].digest.slice(7));
      expect(readdirSync(join(root, 'tmp'))).toEqual([]);
      expect(await store.resolve(`${host}/shoal-test:1`)).toBeNull();

      await open.start();
      const rec = await store.pull(`${open.host}/shoal-test:1`, client());
      expect(blobs()).toContain(layers[0].digest.slice(7));
      expect((await store.resolve(`${open.host}/shoal-test:1`))!.id).toBe(rec.id);
    } finally {
      await proxy.close();
    }
  });
});
