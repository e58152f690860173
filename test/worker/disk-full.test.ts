import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fillDisk } from '../helpers/disk';
import { buildTestImage, TestNode } from '../helpers/test-node';

async function until(what: string, fn: () => boolean, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

// A node whose data dir is a small tmpfs, so that "no space left" is real; etcd alone fills a
// quarter of it, over the image collection mark.
const node = new TestNode();
node.daemonArgs = ['--image-gc-high-percent', '10'];
let image: string;
let mounted = false;

beforeAll(async () => {
  image = buildTestImage(node.dir);
  fs.mkdirSync(node.dataDir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256m', `shoal-test-full-${node.id}`, node.dataDir]);
  mounted = true;
  await node.start();
  node.ok('init');
});

afterAll(async () => {
  try {
    await node.destroy();
  } catch {
    // its data dir is a mount point: removed below
  } finally {
    if (mounted) execFileSync('umount', [node.dataDir]);
    fs.rmSync(node.dir, { recursive: true, force: true });
  }
});

describe('a node whose data disk is full', () => {
  it('refuses an image load that collection would undo at once, saying the disk is too full', () => {
    const r = node.shoal('image', 'load', image);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/the disk is too full to keep the image: the disk holding .* is \d+% full, over --image-gc-high-percent 10 even with every unused image deleted/);
    expect(node.ok('image', 'ls', '-q')).toBe('');
  });

  it('says so plainly, keeps restarting etcd, and recovers once there is space', async () => {
    fillDisk(node.dataDir, 'filler-1');
    // etcd dies of it; its pid file is gone too, so restarting it fails writing a new one
    const etcdDir = path.join(node.dataDir, 'etcd');
    const pid = Number(fs.readFileSync(path.join(etcdDir, 'etcd.pid'), 'utf8'));
    fs.rmSync(path.join(etcdDir, 'etcd.pid'));
    fillDisk(node.dataDir, 'filler-2');
    process.kill(pid, 'SIGKILL');

    await until('two failed restarts', () => /restarting etcd failed \(2 in a row\)/.test(fs.readFileSync(path.join(node.dir, 'shoald.log'), 'utf8')));
    const ls = node.shoal('service', 'ls');
    expect(ls.code).not.toBe(0);
    expect(ls.stderr).toMatch(/the data disk of node .+ is full: .+ has \d+(\.\d+)?[KM]?i?B free of/);
    expect(ls.stderr).not.toMatch(/circuit breaker|ENOSPC/);
    const load = node.shoal('image', 'load', image);
    expect(load.code).not.toBe(0);
    expect(load.stderr).toMatch(/the data disk of node .+ is full/);
    expect(load.stderr).not.toMatch(/ENOSPC/);

    fs.rmSync(path.join(node.dataDir, 'filler-1'));
    fs.rmSync(path.join(node.dataDir, 'filler-2'));
    await until('the cluster store to answer again', () => node.shoal('service', 'ls').code === 0);
    // The store may answer a moment before the supervisor's health check has seen the member back.
    await until('shoald to log the etcd member back', () => /etcd member is back after \d+ failed restart/.test(fs.readFileSync(path.join(node.dir, 'shoald.log'), 'utf8')));
  });
});
