/**
 * Cluster benchmark on hosts in network namespaces (deploy/cluster.sh): how long `shoal join`
 * takes for a worker and for a manager, how long from kill -9 of the leader host (shoald and
 * etcd) until another manager accepts `service scale`, and how long from a worker's death until
 * its tasks run elsewhere. Prints each run and the medians; asserts nothing.
 *
 *   node dist/bench/failover.js [--runs 3]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { Node__Output } from '../src/gen/shoal/v1/Node';
import type { Task__Output } from '../src/gen/shoal/v1/Task';
import { TestCluster, type TestHost } from '../test/helpers/cluster';
import { buildTestImage } from '../test/helpers/test-node';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const runs = Number(values.runs);
const POLL_MS = 50;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function until(check: () => boolean): Promise<number> {
  for (;;) {
    try {
      if (check()) return performance.now();
    } catch {
      // A manager that is down answers nothing; keep asking.
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

function timed(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

const running = (m: TestHost, service: string) =>
  (JSON.parse(m.ok('service', 'ps', service, '--format', 'json')) as Task__Output[]).filter((t) => t.desired_state === 'RUNNING' && t.status!.state === 'RUNNING');

async function once(work: string): Promise<Record<string, number>> {
  const cluster = await TestCluster.create({ managers: 3, workers: 1, join: false });
  try {
    const [h1, h2, h3, h4] = cluster.hosts;
    h1.ok('init', '--advertise-addr', h1.addr);
    const remote = `${h1.addr}:2377`;
    const managerToken = h1.ok('join-token', '-q', 'manager').trim();
    const workerToken = h1.ok('join-token', '-q', 'worker').trim();
    const joinWorker = timed(() => h4.ok('join', '--token', workerToken, remote));
    const joinManager = timed(() => h2.ok('join', '--token', managerToken, remote));
    h3.ok('join', '--token', managerToken, remote);
    const image = buildTestImage(work);
    for (const h of cluster.hosts) h.ok('image', 'load', image);

    h1.ok('service', 'create', '--name', 'bench', '--replicas', '8', 'shoal-test:latest', 'sleep', '100000');
    // Worker death: its tasks on other nodes, running.
    const nodes = JSON.parse(h1.ok('node', 'ls', '--format', 'json')) as Node__Output[];
    const workerId = nodes.find((n) => n.description!.hostname === h4.hostname)!.id;
    const t0 = performance.now();
    await h4.kill('SIGKILL');
    const t1 = await until(() => {
      const live = running(h1, 'bench');
      return live.length === 8 && live.every((t) => t.node_id !== workerId);
    });

    // Leader death: the next `service scale` accepted through another manager.
    const leader = await cluster.leader();
    const other = [h1, h2, h3].find((m) => m !== leader)!;
    const t2 = performance.now();
    await leader.kill('SIGKILL');
    await leader.killEtcd();
    let replicas = 8;
    const t3 = await until(() => other.shoal('service', 'scale', `bench=${++replicas}`, '-d').code === 0);
    return { joinWorker, joinManager, workerFailover: t1 - t0, leaderFailover: t3 - t2 };
  } finally {
    await cluster.destroy();
  }
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-failover-'));
  const results: Record<string, number>[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const r = await once(work);
      results.push(r);
      process.stdout.write(
        `run ${i + 1}: join worker ${seconds(r.joinWorker)}, join manager ${seconds(r.joinManager)}, worker death → tasks elsewhere ${seconds(r.workerFailover)}, leader kill → scale accepted ${seconds(r.leaderFailover)}\n`,
      );
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const m = (k: string) => seconds(median(results.map((r) => r[k])));
  process.stdout.write(
    `median of ${runs}: join worker ${m('joinWorker')}, join manager ${m('joinManager')}, worker death → tasks elsewhere ${m('workerFailover')}, leader kill → scale accepted ${m('leaderFailover')}\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
