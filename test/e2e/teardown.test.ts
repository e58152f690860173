import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runningOf } from './observe';
import { leftoversOf, useE2eNode } from './use-node';
import { IDLE } from '../helpers/workloads';

const node = useE2eNode();
const TEARDOWN = path.join(__dirname, '../../deploy/teardown.sh');

describe('deploy/teardown.sh', () => {
  it('pointed at a node’s paths, stops it and removes every container, mount, cgroup and file it made', async () => {
    node.ok('service', 'create', '--name', 'web', '--replicas', '3', '--limit-memory', '32m', 'shoal-test:latest', ...IDLE);
    const tasks = await runningOf(node, 'web');
    expect(tasks).toHaveLength(3);
    const pids = tasks.map((t) => t.status!.container!.pid);
    const etcd = Number(fs.readFileSync(path.join(node.dataDir, 'etcd', 'etcd.pid'), 'utf8'));
    // Something to remove of each kind: containers with their cgroups and monitors, etcd, the daemon.
    // (A container's rootfs is mounted in its own mount namespace, none on the host.)
    expect(leftoversOf(node).filter((l) => l.startsWith('cgroup:')).length).toBeGreaterThan(0);
    expect(leftoversOf(node).filter((l) => l.startsWith('process:') && l.includes('conmon')).length).toBe(3);

    // Every path is this node's: the machine's own /var/lib/shoal and /run/shoal are never named.
    const r = spawnSync(
      'bash',
      [TEARDOWN, `--data-dir=${node.dataDir}`, `--socket=${node.socket}`, `--cgroup-parent=${node.cgroupParent}`, `--runc-root=${node.runcRoot}`],
      { encoding: 'utf8', timeout: 120_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(`shoal removed from this node (${node.dataDir})\n`);

    for (const pid of [...pids, etcd]) expect(fs.existsSync(`/proc/${pid}`), `pid ${pid}`).toBe(false);
    for (const p of [node.dataDir, node.socket, node.runcRoot]) expect(fs.existsSync(p), p).toBe(false);
    // What is left of the node is the test's own directory (the daemon's log) and nothing else.
    expect(leftoversOf(node)).toEqual([`directory: ${node.dir}`]);
    expect(fs.readdirSync(node.dir).filter((f) => !f.endsWith('.tar') && f !== 'shoald.log')).toEqual([]);
  });
});
