import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../helpers/cluster';
import { useTestCluster } from '../helpers/use-cluster';
import { IDLE } from '../helpers/workloads';

// Disaster recovery as deploy/PRODUCTION.md tells it: the only manager loses its state, and the
// backup is restored on that host, at the same address, where the worker finds it again and
// converges to what the backup assigns it.
const fixture = useTestCluster({ managers: 1, workers: 1 });
let cluster: TestCluster;
beforeAll(() => void (cluster = fixture.cluster));

describe('restoring a backup after the managers are lost', { timeout: 300_000 }, () => {
  it('brings the services back on the old manager’s address, and its worker back with its running task', async () => {
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
    const file = path.join(fixture.work, 'cluster.db');
    h1.ok('swarm', 'backup', file);
    // Made after the backup: the restored cluster does not know it, and the worker stops it.
    h1.ok('service', 'create', '--name', 'late', '--constraint', `node.hostname==${h2.hostname}`, 'shoal-test:latest', ...IDLE);
    expect(h2.containerIds()).toHaveLength(2);

    // The disaster: the only manager leaves for good; its etcd data, and the cluster state with
    // it, is gone. The worker keeps its container, cut off from any manager.
    h1.ok('leave', '--force');
    expect(fs.existsSync(path.join(h1.dataDir, 'etcd'))).toBe(false);
    expect(h2.containerIds()).toHaveLength(2);

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
    expect(h1.shoal('service', 'inspect', 'late').stderr).toMatch(/not found/);
    await cluster.waitFor(() => h2.containerIds().length === 1, { what: 'the worker to stop the task of late, which the backup does not have' });

    h1.ok('service', 'rm', 'web');
    await cluster.waitFor(() => cluster.hosts.every((h) => h.containerIds().length === 0), { what: 'every container gone', timeoutMs: 90_000 });
  });
});

// systemd's restart of a manager (deploy/systemd/shoald.service) waits on the same SIGTERM.
describe('a manager that holds a worker’s session', { timeout: 300_000 }, () => {
  it('stops on SIGTERM (the session stream is cut once the grace is over) and takes the session back after its restart', async () => {
    const [h1, h2] = cluster.hosts;
    await cluster.waitFor(() => JSON.parse(h1.ok('node', 'ls', '--format', 'json')).every((n: { status: { state: string } }) => n.status.state === 'NODE_READY'), {
      what: 'both nodes Ready',
    });
    // cluster.sh kill fails when shoald has not exited 30 s after the signal.
    await h1.kill('SIGTERM');
    await h1.start();
    await cluster.waitFor(
      () => {
        const nodes: { description: { hostname: string }; status: { state: string } }[] = JSON.parse(h1.ok('node', 'ls', '--format', 'json'));
        return nodes.find((n) => n.description.hostname === h2.hostname)?.status.state === 'NODE_READY';
      },
      { what: 'the worker Ready again after the manager’s restart', timeoutMs: 120_000 },
    );
  });
});

describe('restoring while old managers come back with their data', { timeout: 600_000 }, () => {
  it('keeps the restored manager serving, and the old ones join it again once they have left', async ({ onTestFailed }) => {
    const three = await TestCluster.create({ managers: 3, workers: 0 });
    onTestFailed(() => {
      for (const host of three.hosts) process.stderr.write(`──── ${host.name} shoald.log (last lines)\n${host.daemonLog(30)}\n──── etcd.log\n${host.etcdLog(10)}\n`);
    });
    try {
      const [h1, h2, h3] = three.hosts;
      const file = path.join(fixture.work, 'three.db');
      h1.ok('swarm', 'backup', file);
      for (const h of [h2, h3]) {
        await h.kill('SIGKILL');
        await h.killEtcd();
      }
      h1.ok('leave', '--force');
      h1.ok('swarm', 'restore', '--advertise-addr', h1.addr, file);
      // The old members find a quorum among themselves again, at the addresses the restored
      // member's old self had as peers; the restored member, a cluster of its own, is not theirs.
      await h2.start();
      await h3.start();
      await three.waitFor(() => JSON.parse(h2.ok('info', '--format', 'json')).leader || JSON.parse(h3.ok('info', '--format', 'json')).leader, {
        what: 'the old managers to elect a leader among themselves',
      });
      for (let i = 0; i < 5; i++) {
        expect(h1.shoal('node', 'ls').code).toBe(0);
        await new Promise((r) => setTimeout(r, 1000));
      }

      const token = h1.ok('join-token', '-q', 'manager').trim();
      for (const h of [h2, h3]) {
        h.ok('leave', '--force');
        h.ok('join', '--token', token, '--advertise-addr', h.addr, `${h1.addr}:2377`);
      }
      const nodes = await three.waitFor(
        () => {
          const list: { status: { state: string }; manager_status: { leader: boolean; reachability: string } }[] = JSON.parse(h1.ok('node', 'ls', '--format', 'json'));
          return list.length === 3 && list.every((n) => n.status.state === 'NODE_READY' && n.manager_status.reachability === 'reachable') && list;
        },
        { what: 'three Ready, reachable managers in the restored cluster', timeoutMs: 120_000 },
      );
      expect(nodes.filter((n) => n.manager_status.leader)).toHaveLength(1);
    } finally {
      await three.destroy();
    }
  });
});
