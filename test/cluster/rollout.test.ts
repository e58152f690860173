import { beforeAll, expect, it } from 'vitest';
import type { Service__Output } from '../../src/gen/shoal/v1/Service';
import type { TestCluster } from '../helpers/cluster';
import { useTestCluster } from '../helpers/use-cluster';
import { IDLE } from '../helpers/workloads';

// Rolling updates across hosts: three managers (h1-h3, which run tasks too) and a worker (h4).
const fixture = useTestCluster({ managers: 3, workers: 1 });
let cluster: TestCluster;
beforeAll(() => void (cluster = fixture.cluster));
const SERVICES = fixture.services;
const IMAGE = 'shoal-test:latest';

const inspect = (name: string): Promise<Service__Output> => cluster.ask((c) => c.getService(name));

async function createService(name: string, ...args: string[]): Promise<void> {
  SERVICES.push(name);
  (await cluster.answering()).ok('service', 'create', '--name', name, ...args);
  await cluster.waitFor(async () => (await cluster.running(name)).length === 6, { what: `6 replicas of ${name} running` });
}

/** Slot and spec version of each running task, in slot order: one per slot once a rollout is done. */
const slots = async (name: string) =>
  (await cluster.running(name)).map((t) => [t.slot, t.spec_version]).sort((a, b) => a[0] - b[0]);

it('rolls 6 replicas over 4 hosts 2 at a time, never fewer than 4 running, and rolls a failing health check back by itself', { timeout: 300_000 }, async () => {
  await createService('web', '--replicas', '6', '--update-parallelism', '2', '--update-failure-action', 'rollback', '--update-monitor', '1s', '--rollback-monitor', '1s', IMAGE, ...IDLE);
  (await cluster.answering()).ok('service', 'update', '-d', '--env-add', 'V=2', 'web');
  let fewest = 6;
  const updated = await cluster.waitFor(
    async () => {
      fewest = Math.min(fewest, (await cluster.running('web')).length);
      const s = await inspect('web');
      return s.update_status?.state === 'completed' && s;
    },
    { what: 'the update of web completed', timeoutMs: 180_000 },
  );
  expect(fewest).toBeGreaterThanOrEqual(4);
  expect(await slots('web')).toEqual([1, 2, 3, 4, 5, 6].map((slot) => [slot, updated.spec_version]));
  const hosts = new Set((await cluster.running('web')).map((t) => t.node_id));
  expect(hosts.size).toBeGreaterThanOrEqual(3);

  // A check that never passes: the first updated task fails, and the update undoes itself.
  const r = (await cluster.answering()).shoal('service', 'update', '--health-cmd', 'echo broken; exit 3', '--health-retries', '1', '--health-interval', '500ms', 'web');
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/^Error: update of service web was rolled back: task web\.\d \(\w+\) failed: unhealthy container: 1 health check in a row failed; the last: exit status 3: broken; /m);
  const back = await cluster.waitFor(
    async () => {
      const s = await inspect('web');
      return s.update_status?.state === 'rollback_completed' && s;
    },
    { what: 'the rollback of web completed', timeoutMs: 180_000 },
  );
  expect(back.spec!.task_template!.container!.healthcheck ?? null).toBeNull();
  expect(back.spec!.task_template!.container!.env).toContain('V=2');
  await cluster.waitFor(async () => JSON.stringify(await slots('web')) === JSON.stringify([1, 2, 3, 4, 5, 6].map((slot) => [slot, back.spec_version])), {
    what: 'every slot running the spec rolled back to',
  });
});

it('carries a rollout on through a kill -9 of the leader: the next leader completes it from etcd', { timeout: 300_000 }, async () => {
  await createService('carry', '--replicas', '6', '--update-parallelism', '2', '--update-monitor', '2s', IMAGE, ...IDLE);
  const leader = await cluster.waitFor(() => cluster.leader(), { what: 'a leader' });
  (await cluster.answering()).ok('service', 'update', '-d', '--env-add', 'V=2', 'carry');
  const version = (await inspect('carry')).spec_version;
  const midway = await cluster.waitFor(
    async () => {
      const s = await inspect('carry');
      const fresh = (await cluster.running('carry')).filter((t) => t.spec_version === version).length;
      return s.update_status?.state === 'updating' && fresh >= 1 && fresh < 6 && s.update_status;
    },
    { what: 'the update of carry under way' },
  );
  await leader.kill('SIGKILL');
  await leader.killEtcd();
  try {
    const done = await cluster.waitFor(
      async () => {
        const s = await inspect('carry');
        return s.update_status?.state === 'completed' && s;
      },
      { what: 'the update of carry completed by the next leader', timeoutMs: 180_000 },
    );
    // The same rollout went on, under another leader: not begun again.
    expect(done.update_status!.started_at).toBe(midway.started_at);
    expect(await cluster.waitFor(() => cluster.leader(), { what: 'a new leader' })).not.toBe(leader);
  } finally {
    await leader.start();
  }
  await cluster.waitFor(async () => (await cluster.nodes()).every((n) => n.status!.state === 'NODE_READY'), { what: 'every node Ready again' });
  await cluster.waitFor(async () => JSON.stringify(await slots('carry')) === JSON.stringify([1, 2, 3, 4, 5, 6].map((slot) => [slot, version])), {
    what: 'one task per slot, each of the new spec',
  });
  await cluster.waitFor(async () => cluster.hosts.reduce((n, host) => n + host.containerIds().length, 0) === 6, { what: 'exactly 6 containers' });
});
