import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, expect } from 'vitest';
import { TestNode } from '../helpers/test-node';
import { testImage } from './images';
import { apiOf, closeApi, waitFor } from './observe';

export interface E2eNodeOptions {
  /**
   * More shoald flags, read when the node starts (so they may name a registry started in an
   * earlier beforeAll). Automatic image collection is off unless a file turns it on here.
   */
  daemonArgs?: () => string[];
  /** Run `shoal init` and load shoal-test:latest (default true). */
  ready?: boolean;
}

/**
 * One real shoald for a whole test file: started before the first test, every service removed
 * (and its containers waited for) after each test, destroyed after the last, and then checked
 * for anything of its own left on the host.
 */
export function useE2eNode(opts: E2eNodeOptions = {}): TestNode {
  const node = new TestNode();
  beforeAll(async () => {
    node.daemonArgs = ['--image-gc-high-percent=0', ...(opts.daemonArgs?.() ?? [])];
    await node.start();
    if (opts.ready === false) return;
    node.ok('init');
    node.ok('image', 'load', testImage(node));
  });
  // What a failed test needs explained is in the daemon's log, which destroy() removes.
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => void process.stderr.write(`──── shoald.log (last lines)\n${node.daemonLog(120)}\n`));
  });
  afterEach(async () => {
    await removeServices(node);
  });
  afterAll(async () => {
    try {
      closeApi(node);
      await node.destroy();
    } finally {
      expect(leftoversOf(node)).toEqual([]);
    }
  });
  return node;
}

/** Removes every service of a running node and waits until their containers are gone. */
export async function removeServices(node: TestNode): Promise<void> {
  const api = apiOf(node);
  // Not initialised, or the daemon or its cluster is down on purpose: there is nothing to remove.
  const listed = await api.listServices().catch(() => undefined);
  if (!listed) return;
  for (const { service } of listed.services) await api.removeService(service!.id);
  // A task's network namespace is released after its container, and a stopping shoald leaves it for the next.
  await waitFor('every container and network namespace of the removed services to be gone', () => node.containerIds().length === 0 && namespacesOf(node).length === 0, 60_000);
}

/** The network namespaces shoald keeps for its tasks' containers. */
function namespacesOf(node: TestNode): string[] {
  try {
    return fs.readdirSync(path.join(node.dataDir, 'netns'));
  } catch {
    return [];
  }
}

/**
 * Mounts, cgroups, runc state, processes and files of this node still on the host. The runc root
 * is checked by existence: `runc list` would create it.
 */
export function leftoversOf(node: TestNode): string[] {
  const out: string[] = [];
  const mine = (text: string) => [node.dir, node.runcRoot, node.cgroupParent].some((m) => text.includes(m));
  for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) if (mine(line)) out.push(`mount: ${line}`);
  const cgroups = execFileSync('find', ['/sys/fs/cgroup', '-maxdepth', '3', '-name', node.cgroupParent], { encoding: 'utf8' });
  out.push(...cgroups.split('\n').filter(Boolean).map((d) => `cgroup: ${d}`));
  for (const l of execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).split('\n')) if (mine(l) && !l.includes('ps -eo')) out.push(`process: ${l.trim()}`);
  for (const dir of [node.runcRoot, node.dir]) if (fs.existsSync(dir)) out.push(`directory: ${dir}`);
  return out;
}
