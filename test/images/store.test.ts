import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, symlinkSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { status } from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ShoalError } from '../../src/common/errors';
import { leftovers, testMarker } from '../helpers/runtime';
import { ImageStore } from '../../src/images/store';
import { buildTestImage, flipByte, load, ociArchive, rewriteArchive, sha256, snapshot, tarOf } from './helpers';

let images: string; // archives built once by the script
let ociTar: string;
let dockerTar: string;
let work: string; // per test
let root: string;
const mounts: string[] = [];
const marker = testMarker();

beforeAll(() => {
  images = mkdtempSync(join(tmpdir(), `${marker}-images-`));
  ociTar = buildTestImage(join(images, 'oci.tar'), 'oci');
  dockerTar = buildTestImage(join(images, 'docker.tar'), 'docker');
});
afterAll(() => {
  rmSync(images, { recursive: true, force: true });
  expect(leftovers(marker)).toEqual([]);
});

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), `${marker}-store-`));
  root = join(work, 'root');
});
afterEach(() => {
  try {
    for (const m of mounts.splice(0)) execFileSync('umount', [m]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

async function refused(p: Promise<unknown>, code: status, message: RegExp): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ShoalError);
  expect((err as ShoalError).code).toBe(code);
  expect((err as ShoalError).message).toMatch(message);
}

function countingLogger() {
  const lines: Array<{ msg: string }> = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()));
      cb();
    },
  });
  return { log: pino({ level: 'info' }, sink), count: (msg: string) => lines.filter((l) => l.msg === msg).length };
}

describe('build-test-image.sh', () => {
  it('is deterministic', () => {
    const again = buildTestImage(join(work, 'again.tar'), 'oci');
    expect(readFileSync(again).equals(readFileSync(ociTar))).toBe(true);
  });
});

describe('load', () => {
  it('loads an OCI image layout and resolves it', async () => {
    const store = new ImageStore(root);
    const [rec] = await load(store, ociTar);
    expect(rec.tags).toEqual(['shoal-test:latest']);
    expect(rec.id).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(existsSync(join(root, 'blobs/sha256', rec.id.slice(7)))).toBe(true);
    expect(existsSync(join(root, 'blobs/sha256', rec.digest.slice(7)))).toBe(true);
    expect(await store.list()).toEqual([rec]);

    const img = await store.resolve('shoal-test');
    expect(img).not.toBeNull();
    expect(img!.id).toBe(rec.id);
    expect(img!.config).toEqual({
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      entrypoint: [],
      cmd: ['sh'],
      workingDir: '/',
      user: '',
      stopSignal: '',
      labels: {},
    });
    expect(img!.layers).toHaveLength(1);
    const layer = img!.layers[0];
    expect(statSync(join(layer, 'bin/busybox')).mode & 0o777).toBe(0o755);
    expect(lstatSync(join(layer, 'bin/sh')).isSymbolicLink()).toBe(true);
    expect(statSync(join(layer, 'tmp')).mode & 0o7777).toBe(0o1777);
    expect(readFileSync(join(layer, 'etc/passwd'), 'utf8')).toMatch(/^root:x:0:0:/);
    expect(readFileSync(join(layer, 'www/index.html'), 'utf8')).toMatch(/shoal/);
    // The same image by every name it has.
    expect((await store.resolve('shoal-test:latest'))!.id).toBe(rec.id);
    expect((await store.resolve(`shoal-test@${rec.digest}`))!.id).toBe(rec.id);
    expect((await store.resolve(rec.id))!.id).toBe(rec.id);
    expect((await store.resolve(rec.id.slice(7, 19)))!.id).toBe(rec.id);
    expect(await store.resolve('shoal-test:other')).toBeNull();
    expect(await store.resolve('nothing-here')).toBeNull();
    await refused(store.resolve('Bad/Name'), status.INVALID_ARGUMENT, /lowercase/);
  });

  it('loads a legacy docker save archive as the same image', async () => {
    const store = new ImageStore(root);
    const [fromDocker] = await load(store, dockerTar);
    expect(fromDocker.tags).toEqual(['shoal-test:latest']);
    const img = await store.resolve('shoal-test:latest');
    expect(existsSync(join(img!.layers[0], 'bin/busybox'))).toBe(true);
    // Same config, so the same id as the OCI build; the layer is unpacked once for both.
    const [fromOci] = await load(store, ociTar);
    expect(fromOci.id).toBe(fromDocker.id);
    expect(await store.list()).toHaveLength(1);
    expect(readdirSync(join(root, 'layers'))).toHaveLength(1);
  });

  it('reads tags from manifest.json in the newer docker format, and gzipped archives', async () => {
    const layer = tarOf(join(work, 'l1'), { 'hello.txt': 'hi' });
    const out = join(work, 'new.tar');
    const { id } = ociArchive(work, out, [{ tar: layer, gzip: true }], { dockerRepoTags: ['registry.local:5000/team/app:v1'] });
    writeFileSync(join(work, 'new.tar.gz'), gzipSync(readFileSync(out)));
    const store = new ImageStore(root);
    const [rec] = await load(store, join(work, 'new.tar.gz'));
    expect(rec).toMatchObject({ id, tags: ['registry.local:5000/team/app:v1'], createdAt: '2024-01-02T03:04:05.000Z' });
    const img = await store.resolve('registry.local:5000/team/app:v1');
    expect(img!.config).toMatchObject({ env: ['A=1'], labels: { l: 'v' }, stopSignal: 'SIGQUIT' });
    expect(readFileSync(join(img!.layers[0], 'hello.txt'), 'utf8')).toBe('hi');
  });

  it('follows the symlinks docker save writes for layers two images share', async () => {
    const out = join(work, 'two.tar');
    rewriteArchive(dockerTar, work, out, (dir) => {
      const [first] = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
      const config = JSON.parse(readFileSync(join(dir, first.Config), 'utf8'));
      config.config.Cmd = ['echo', 'second'];
      const text = Buffer.from(JSON.stringify(config));
      writeFileSync(join(dir, `${sha256(text).slice(7)}.json`), text);
      mkdirSync(join(dir, 'dup'));
      symlinkSync(`../${first.Layers[0]}`, join(dir, 'dup/layer.tar'));
      const second = { Config: `${sha256(text).slice(7)}.json`, RepoTags: ['second:1'], Layers: ['dup/layer.tar'] };
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify([first, second]));
    });
    const store = new ImageStore(root);
    const loaded = await load(store, out);
    expect(loaded.map((i) => i.tags)).toEqual([['shoal-test:latest'], ['second:1']]);
    const [a, b] = await Promise.all([store.resolve('shoal-test'), store.resolve('second:1')]);
    expect(b!.config.cmd).toEqual(['echo', 'second']);
    expect(b!.layers).toEqual(a!.layers);
  });

  it('is idempotent', async () => {
    const store = new ImageStore(root);
    const first = await load(store, ociTar);
    await store.resolve('shoal-test');
    const before = snapshot(root);
    expect(await load(store, ociTar)).toEqual(first);
    expect(snapshot(root)).toEqual(before);
    // And a fresh store on the same root sees the same images.
    expect(await new ImageStore(root).list()).toEqual(first);
  });

  it('moves a tag to the image loaded last, keeping the old image by id', async () => {
    const store = new ImageStore(root);
    const [old] = await load(store, ociTar);
    const out = join(work, 'other.tar');
    const { id } = ociArchive(work, out, [{ tar: tarOf(join(work, 'l'), { f: 'x' }) }], { tag: 'shoal-test:latest' });
    await load(store, out);
    expect((await store.resolve('shoal-test'))!.id).toBe(id);
    expect((await store.list()).find((i) => i.id === old.id)!.tags).toEqual([]);
  });
});

describe('refusals leave the store as it was', () => {
  let store: ImageStore;
  let before: string[];
  beforeEach(async () => {
    store = new ImageStore(root);
    const layer = tarOf(join(work, 'base'), { 'base.txt': 'base' });
    ociArchive(join(work, 'b'), join(work, 'base.tar'), [{ tar: layer }], { tag: 'base:1' });
    await load(store, join(work, 'base.tar'));
    before = snapshot(root);
  });
  afterEach(async () => {
    expect(snapshot(root)).toEqual(before);
    expect(await store.list()).toHaveLength(1);
  });

  it('refuses a truncated archive', async () => {
    const cut = join(work, 'cut.tar');
    writeFileSync(cut, readFileSync(ociTar));
    truncateSync(cut, Math.floor(statSync(ociTar).size / 2));
    await refused(load(store, cut), status.INVALID_ARGUMENT, /image archive is truncated/);
  });

  it('refuses an archive cut exactly between two members', async () => {
    const cut = join(work, 'cut.tar');
    writeFileSync(cut, readFileSync(ociTar).subarray(0, 1024));
    await refused(load(store, cut), status.INVALID_ARGUMENT, /^image archive is truncated$/);
  });

  it('refuses a truncated gzipped archive', async () => {
    const gz = gzipSync(readFileSync(ociTar));
    await refused(store.load(Readable.from([gz.subarray(0, gz.length - 100)])), status.INVALID_ARGUMENT, /truncated/);
  });

  it('refuses a complete archive that lacks a blob', async () => {
    const partial = join(work, 'partial.tar');
    rewriteArchive(ociTar, work, partial, (dir) => {
      for (const f of readdirSync(join(dir, 'blobs/sha256'))) {
        if (statSync(join(dir, 'blobs/sha256', f)).size > 10_000) rmSync(join(dir, 'blobs/sha256', f));
      }
    });
    await refused(load(store, partial), status.INVALID_ARGUMENT, /incomplete \(truncated\?\): it lacks blobs\/sha256\//);
  });

  it('refuses a tampered blob', async () => {
    const bad = join(work, 'bad.tar');
    rewriteArchive(ociTar, work, bad, (dir) => {
      const big = readdirSync(join(dir, 'blobs/sha256')).find((f) => statSync(join(dir, 'blobs/sha256', f)).size > 10_000)!;
      flipByte(join(dir, 'blobs/sha256', big), 5000);
    });
    await refused(load(store, bad), status.INVALID_ARGUMENT, /^blob sha256:[a-f0-9]{64} does not match its digest$/);
  });

  it('refuses a docker save layer that does not match its diff id', async () => {
    const bad = join(work, 'bad.tar');
    rewriteArchive(dockerTar, work, bad, (dir) => {
      const layerDir = readdirSync(dir).find((f) => existsSync(join(dir, f, 'layer.tar')))!;
      flipByte(join(dir, layerDir, 'layer.tar'), 5000);
    });
    await refused(load(store, bad), status.INVALID_ARGUMENT, /layer .*layer\.tar does not match its diff id sha256:/);
  });

  it('refuses a gzipped layer whose content does not match its diff id', async () => {
    const out = join(work, 'lie.tar');
    const layer = { tar: tarOf(join(work, 'l'), { a: 'a' }), gzip: true };
    ociArchive(work, out, [layer], { diffIds: [sha256(Buffer.from('something else'))] });
    await refused(load(store, out), status.INVALID_ARGUMENT, /does not match its diff id .* once uncompressed/);
  });

  it('refuses something that is not a tar', async () => {
    await refused(store.load(Readable.from([Buffer.from('hello, not a tar')])), status.INVALID_ARGUMENT, /not a valid tar|truncated/);
  });
});

describe('resolve', () => {
  it('unpacks a layer once for 50 concurrent resolves', async () => {
    const { log, count } = countingLogger();
    const store = new ImageStore(root, log);
    await load(store, ociTar);
    const all = await Promise.all(Array.from({ length: 50 }, () => store.resolve('shoal-test')));
    expect(new Set(all.map((i) => i!.layers.join()))).toHaveProperty('size', 1);
    expect(count('unpacked layer')).toBe(1);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    await store.resolve('shoal-test');
    expect(count('unpacked layer')).toBe(1);
  });

  it('turns whiteouts into overlayfs form', async () => {
    const l1 = tarOf(join(work, 'l1'), { 'etc/keep': 'k', 'etc/gone': 'g', 'data/a': 'a', 'data/b': 'b' });
    const l2 = tarOf(join(work, 'l2'), { 'etc/.wh.gone': '', 'data/.wh..wh..opq': '', 'data/c': 'c' });
    const out = join(work, 'wh.tar');
    ociArchive(work, out, [{ tar: l1 }, { tar: l2, gzip: true }], { tag: 'wh:1' });
    const store = new ImageStore(root);
    await load(store, out);
    const img = await store.resolve('wh:1');
    const [lower, upper] = img!.layers;
    const gone = lstatSync(join(upper, 'etc/gone'));
    expect(gone.isCharacterDevice()).toBe(true);
    expect(gone.rdev).toBe(0);
    expect(existsSync(join(upper, 'etc/.wh.gone'))).toBe(false);
    expect(existsSync(join(upper, 'data/.wh..wh..opq'))).toBe(false);
    expect(execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'trusted.overlay.opaque', join(upper, 'data')]).toString()).toBe('y');
    expect(existsSync(join(lower, 'etc/gone'))).toBe(true);

    // What a container would see.
    const merged = join(work, 'merged');
    execFileSync('mkdir', ['-p', merged]);
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${[...img!.layers].reverse().join(':')}`, merged]);
    mounts.push(merged);
    expect(readdirSync(join(merged, 'etc'))).toEqual(['keep']);
    expect(readdirSync(join(merged, 'data'))).toEqual(['c']);
  });

  it('refuses a layer with members that escape it, leaving no layer behind', async () => {
    // GNU tar will not write a member named ../x, so the archive is made with node-tar.
    const tar = await import('tar');
    const src = join(work, 'evil');
    execFileSync('mkdir', ['-p', join(src, 'sub')]);
    writeFileSync(join(src, 'ok'), 'ok');
    const chunks: Buffer[] = [];
    const packed = tar.c({ cwd: src, portable: true, preservePaths: true, onWriteEntry: (e) => (e.path = e.path === 'ok' ? '../escaped' : e.path) }, ['ok']);
    for await (const c of packed as unknown as AsyncIterable<Buffer>) chunks.push(c);
    const out = join(work, 'evil.tar');
    ociArchive(work, out, [{ tar: Buffer.concat(chunks) }], { tag: 'evil:1' });
    const store = new ImageStore(root);
    await load(store, out);
    await refused(store.resolve('evil:1'), status.INVALID_ARGUMENT, /could not be unpacked: .*\.\./);
    expect(readdirSync(join(root, 'layers'))).toEqual([]);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    expect(existsSync(join(root, 'escaped'))).toBe(false);
  });
});

describe('remove', () => {
  it('refuses to delete an image in use, and changes nothing', async () => {
    const store = new ImageStore(root);
    const [rec] = await load(store, ociTar);
    await store.resolve('shoal-test');
    const before = snapshot(root);
    const inUse = (id: string) => id === rec.id;
    await refused(store.remove('shoal-test', inUse), status.FAILED_PRECONDITION, /image shoal-test \([a-f0-9]{12}\) is in use by a container/);
    await refused(store.remove(rec.id.slice(7, 15), inUse), status.FAILED_PRECONDITION, /in use/);
    expect(snapshot(root)).toEqual(before);
    expect((await store.list())[0].tags).toEqual(['shoal-test:latest']);
  });

  it('untags while other tags remain, then deletes blobs and layers', async () => {
    const store = new ImageStore(root);
    const [rec] = await load(store, ociTar);
    await load(store, buildTestImage(join(work, 'v2.tar'), 'oci', 'shoal-test:v2'));
    await store.resolve('shoal-test');
    expect((await store.list())[0].tags).toEqual(['shoal-test:latest', 'shoal-test:v2']);

    expect(await store.remove('shoal-test:v2', () => true)).toEqual({ untagged: ['shoal-test:v2'], deleted: [] });
    expect(await store.resolve('shoal-test:v2')).toBeNull();
    const layerDiffId = `sha256:${readdirSync(join(root, 'layers'))[0]}`;

    expect(await store.remove('shoal-test', () => false)).toEqual({ untagged: ['shoal-test:latest'], deleted: [rec.id, layerDiffId] });
    expect(await store.list()).toEqual([]);
    expect(readdirSync(join(root, 'blobs/sha256'))).toEqual([]);
    expect(readdirSync(join(root, 'layers'))).toEqual([]);
    await refused(store.remove('shoal-test', () => false), status.NOT_FOUND, /no such image: shoal-test/);
  });

  it('removes by id prefix and keeps layers another image shares', async () => {
    const store = new ImageStore(root);
    const base = tarOf(join(work, 'base'), { 'base.txt': 'base' });
    const a = ociArchive(join(work, 'a'), join(work, 'a.tar'), [{ tar: base }, { tar: tarOf(join(work, 'la'), { a: 'a' }) }], { tag: 'a:1' });
    const b = ociArchive(join(work, 'b'), join(work, 'b.tar'), [{ tar: base }, { tar: tarOf(join(work, 'lb'), { b: 'b' }) }], { tag: 'b:1' });
    await load(store, join(work, 'a.tar'));
    await load(store, join(work, 'b.tar'));
    await Promise.all([store.resolve('a:1'), store.resolve('b:1')]);
    expect(readdirSync(join(root, 'layers'))).toHaveLength(3);

    const res = await store.remove(a.id.slice(7, 19), () => false);
    expect(res.untagged).toEqual(['a:1']);
    expect(res.deleted).toHaveLength(2);
    expect(res.deleted[0]).toBe(a.id);
    const img = await store.resolve('b:1');
    expect(readFileSync(join(img!.layers[0], 'base.txt'), 'utf8')).toBe('base');
    expect(readdirSync(join(root, 'layers'))).toHaveLength(2);
    expect(existsSync(join(root, 'blobs/sha256', a.manifestDigest.slice(7)))).toBe(false);
    expect(existsSync(join(root, 'blobs/sha256', b.manifestDigest.slice(7)))).toBe(true);
  });
});
