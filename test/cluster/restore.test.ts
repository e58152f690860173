import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../helpers/cluster';
import { buildTestImage } from '../helpers/test-node';
import { IDLE } from '../helpers/workloads';

// Disaster recovery as deploy/PRODUCTION.md tells it: the only manager loses its state, and the
// backup is restored on that host, at the same address, where the worker finds it again.
let cluster: TestCluster;
let work: string;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-restore-'));
  cluster = await TestCluster.create({ managers: 1, workers: 1 });
  const image = buildTestImage(work);
  for (const host of cluster.hosts) host.ok('image', 'load', image);
}, 300_000);

afterAll(async () => {
  fs.rmSync(work, { recursive: true, force: true });
  await cluster?.destroy();
}, 180_000);

describe('restoring a backup after the managers are lost', { timeout: 300_000 }, () => {
  it('brings the services back on the old manager’s address, and its worker back with its running task', async ({ onTestFailed }) => {
    onTestFailed(() => {
      for (const host of cluster.hosts) process.stderr.write(`──── ${host.name} shoald.log (last lines)\n${host.daemonLog(30)}\n`);
    });
    const [h1, h2] = cluster.hosts;
    type Task = { id: string; node_id: string; desired_state: string; status: { state: string } };
    const running = (): Task[] =>
      (JSON.parse(h1.ok('service', 'ps', 'web', '--format', 'json')) as Task[]).filter((t) => t.desired_state === 'RUNNING' && t.status.state === 'RUNNING');
    h1.ok('service', 'create', '--name', 'web', '--replicas', '2', '--replicas-max-per-node', '1', 'shoal-test:latest', ...IDLE);
    const nodeIds = JSON.parse(h1.ok('node', 'ls', '--format', 'json')).map((n: { id: string; description: { hostname: string } }) => [n.description.hostname, n.id]);
    const h2Id = new Map<string, string>(nodeIds).get(h2.hostname)!;
    const before = await cluster.waitFor(() => running().length === 2 && running(), { what: 'web running on both hosts' });
    const onWorker = before.find((t) => t.node_id === h2Id)!;
    expect(onWorker).toBeDefined();
    const file = path.join(work, 'cluster.db');
    h1.ok('swarm', 'backup', file);

    // The disaster: the only manager leaves for good; its etcd data, and the cluster state with
    // it, is gone. The worker keeps its container, cut off from any manager.
    h1.ok('leave', '--force');
    expect(fs.existsSync(path.join(h1.dataDir, 'etcd'))).toBe(false);
    expect(h2.containerIds()).toHaveLength(1);

    const out = h1.ok('swarm', 'restore', '--advertise-addr', h1.addr, file);
    expect(out).toMatch(/restored from .*: current node \([a-z0-9]+\) is now its only manager/);

    // The worker's session comes back to the same address; its task is the one it ran before.
    await cluster.waitFor(
      () => {
        const nodes: { id: string; status: { state: string } }[] = JSON.parse(h1.ok('node', 'ls', '--format', 'json'));
        return nodes.length === 2 && nodes.every((n) => n.status.state === 'NODE_READY');
      },
      { what: 'both nodes Ready in the restored cluster', timeoutMs: 120_000 },
    );
    const after = await cluster.waitFor(() => running().length === 2 && running(), { what: 'web running twice again', timeoutMs: 120_000 });
    expect(after.find((t) => t.node_id === h2Id)?.id).toBe(onWorker.id);
    expect(h2.containerIds()).toHaveLength(1);

    h1.ok('service', 'rm', 'web');
    await cluster.waitFor(() => cluster.hosts.every((h) => h.containerIds().length === 0), { what: 'every container gone', timeoutMs: 90_000 });
  });
});
