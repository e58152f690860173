import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { beforeAll, describe, expect, it } from 'vitest';
import { clientCredentials } from '../../src/ca/tls';
import type { Client } from '../../src/cli/client';
import { shoalProto } from '../../src/common/proto';
import { TestCluster, type TestHost } from '../helpers/cluster';
import { useTestCluster } from '../helpers/use-cluster';
import { IDLE, thenIdle } from '../helpers/workloads';

// Three managers (h1-h3) and two workers (h4, h5), each a network namespace with its own shoald:
// the cluster as the issue describes it, its failures made for real.
const fixture = useTestCluster({ managers: 3, workers: 2 });
let cluster: TestCluster;
beforeAll(() => void (cluster = fixture.cluster));
const SERVICES = fixture.services;

const h = (name: string) => cluster.host(name);

const manager = () => cluster.answering();
const nodes = () => cluster.nodes();
const nodeOf = async (host: TestHost) => (await nodes()).find((n) => n.description!.hostname === host.hostname);
const info = (host: TestHost) => host.api((c) => c.info());
const tasks = (service: string) => cluster.tasks(service);
const running = (service: string) => cluster.running(service);

/** Running tasks per host name. */
async function placement(service: string): Promise<Map<string, number>> {
  const byId = new Map((await nodes()).map((n) => [n.id, n.description!.hostname]));
  const counts = new Map<string, number>();
  for (const t of await running(service)) counts.set(byId.get(t.node_id)!, (counts.get(byId.get(t.node_id)!) ?? 0) + 1);
  return counts;
}

async function createService(name: string, ...args: string[]): Promise<void> {
  SERVICES.push(name);
  (await manager()).ok('service', 'create', '--name', name, ...args);
}

// Each scenario waits on a real cluster converging; on a loaded 2-core machine that takes minutes.
describe('a cluster of 3 managers and 2 workers', { timeout: 300_000 }, () => {
  it('lists every node Ready, one leader and two reachable managers', async () => {
    const list = await cluster.waitFor(async () => {
      const ns = await nodes();
      return ns.length === 5 && ns.every((n) => n.status!.state === 'NODE_READY') && ns;
    }, { what: '5 Ready nodes' });
    expect(list.filter((n) => n.spec!.role === 'manager')).toHaveLength(3);
    expect(list.filter((n) => n.manager_status?.leader)).toHaveLength(1);
    expect((await manager()).ok('node', 'ls')).toMatch(/Leader[\s\S]*Reachable[\s\S]*Reachable/);
    for (const host of cluster.hosts) {
      const dir = path.join(host.dataDir, 'certificates');
      expect(fs.statSync(path.join(dir, 'node.key')).mode & 0o777).toBe(0o600);
      expect(fs.existsSync(path.join(dir, 'ca.crt'))).toBe(true);
    }
  });

  it('spreads 10 replicas over the 5 nodes, 2 each', async () => {
    await createService('spread', '--replicas', '10', 'shoal-test:latest', ...IDLE);
    const counts = await cluster.waitFor(async () => (await running('spread')).length === 10 && (await placement('spread')), { what: '10 running' });
    expect([...counts.values()]).toEqual([2, 2, 2, 2, 2]);
    for (const host of cluster.hosts) expect(host.containerIds()).toHaveLength(2);
  });

  it('runs a global service on every node and follows drain and constraints', async () => {
    await createService('agent', '--mode', 'global', 'shoal-test:latest', ...IDLE);
    await cluster.waitFor(async () => (await running('agent')).length === 5, { what: 'one agent task per node' });
    (await manager()).ok('node', 'update', '--availability', 'drain', h('h5').hostname);
    await cluster.waitFor(async () => (await running('agent')).length === 4 && h('h5').containerIds().length === 0, { what: 'the drained node emptied' });
    (await manager()).ok('node', 'update', '--availability', 'active', h('h5').hostname);
    (await manager()).ok('node', 'update', '--label-add', 'zone=a', h('h4').hostname);
    await createService('zoned', '--replicas', '3', '--constraint', 'node.labels.zone==a', 'shoal-test:latest', ...IDLE);
    await cluster.waitFor(async () => (await running('zoned')).length === 3, { what: '3 zoned tasks' });
    expect([...(await placement('zoned')).keys()]).toEqual([h('h4').hostname]);
    (await manager()).ok('node', 'update', '--label-rm', 'zone', h('h4').hostname);
    await cluster.waitFor(async () => (await running('agent')).length === 5, { what: 'the agent back on the reactivated node' });
  });

  it('keeps a constrained task pending with the reason when no node fits', async () => {
    await createService('nowhere', '-d', '--constraint', 'node.labels.zone==nowhere', 'shoal-test:latest', ...IDLE);
    const t = await cluster.waitFor(async () => (await tasks('nowhere')).find((x) => x.schedule_error), { what: 'a scheduling error' });
    expect(t.schedule_error).toMatch(/constraint node\.labels\.zone==nowhere not satisfied on 5 nodes/);
  });

  it('replaces the tasks of a stopped worker elsewhere, and leaves no surplus when it returns', async () => {
    await createService('survive', '--replicas', '5', 'shoal-test:latest', ...IDLE);
    await cluster.waitFor(async () => (await running('survive')).length === 5, { what: '5 running' });
    const worker = h('h5');
    await worker.kill('SIGKILL');
    await cluster.waitFor(async () => (await nodeOf(worker))!.status!.state === 'NODE_DOWN', { what: 'h5 down' });
    await cluster.waitFor(async () => (await running('survive')).length === 5 && !(await placement('survive')).has(worker.hostname), { what: '5 running elsewhere' });
    await worker.start();
    await cluster.waitFor(async () => worker.containerIds().length === 0 && (await running('survive')).length === 5, { what: 'h5 back with its stale tasks stopped' });
    expect(new Set((await running('survive')).map((t) => t.slot)).size).toBe(5);
  });

  it('survives a worker cut off from every manager, and converges when the link heals', async () => {
    await createService('cut', '--replicas', '5', 'shoal-test:latest', ...IDLE);
    await cluster.waitFor(async () => (await running('cut')).length === 5, { what: '5 running' });
    const worker = h('h4');
    const had = worker.containerIds().length;
    await worker.cutLink();
    await cluster.waitFor(async () => (await nodeOf(worker))!.status!.state === 'NODE_DOWN', { what: 'h4 down', timeoutMs: 60_000 });
    // Cut off, it keeps its containers until it hears otherwise.
    expect(worker.containerIds()).toHaveLength(had);
    await cluster.waitFor(async () => (await running('cut')).length === 5 && !(await placement('cut')).has(worker.hostname), { what: '5 running without h4' });
    await worker.healLink();
    await cluster.waitFor(async () => (await nodes()).every((n) => n.status!.state === 'NODE_READY') && worker.containerIds().length === 0, {
      what: 'h4 back, its stale containers removed',
      timeoutMs: 60_000,
    });
    expect((await running('cut'))).toHaveLength(5);
  });

  it('scales 0 to 30 through a kill -9 of the leader’s shoald and etcd: exactly 30 running, one per slot', async () => {
    await createService('failover', '--replicas', '0', 'shoal-test:latest', ...IDLE);
    const leader = await cluster.waitFor(async () => cluster.leader(), { what: 'a leader' });
    leader.ok('service', 'scale', 'failover=30', '-d');
    await leader.kill('SIGKILL');
    await leader.killEtcd();
    const others = cluster.managers.filter((m) => m !== leader);
    await cluster.waitFor(async () => (await Promise.all(others.map((m) => info(m).then((i) => i.leader, () => false)))).some(Boolean), { what: 'a new leader' });
    await cluster.waitFor(async () => (await running('failover')).length === 30, { what: '30 running', timeoutMs: 180_000 });
    await leader.start();
    await cluster.waitFor(async () => (await nodes()).every((n) => n.status!.state === 'NODE_READY'), { what: 'the old leader back' });
    const live = (await running('failover'));
    expect(live).toHaveLength(30);
    expect(new Set(live.map((t) => t.slot))).toEqual(new Set(Array.from({ length: 30 }, (_, i) => i + 1)));
    // A worker that reconnects after the failover may still be stopping a replaced task's
    // container; what must not happen is a surplus that stays.
    await cluster.waitFor(
      async () => {
        const containers = cluster.hosts.reduce((n, host) => n + host.containerIds().length, 0);
        if (containers !== 30) throw new Error(`${containers} containers`);
        return true;
      },
      { what: 'exactly 30 containers', timeoutMs: 60_000 },
    );
  });

  it('serves a service’s logs from every manager, and names the tasks of a node that is down', async () => {
    const [w4, w5] = [h('h4').hostname, h('h5').hostname];
    await createService('talk', '--replicas', '4', '--constraint', 'node.role==worker', 'shoal-test:latest', ...thenIdle('echo hello'));
    await cluster.waitFor(async () => (await running('talk')).length === 4, { what: '4 running' });
    const line = /^talk\.[1-4]\.[a-z0-9]{25}@(\S+) +\| hello$/;
    // Each worker holds its session with one manager; the other two relay through it.
    for (const m of cluster.managers) {
      const lines = await cluster.waitFor(async () => {
        const out = m.ok('service', 'logs', 'talk').trim().split('\n');
        return out.length === 4 && out;
      }, { what: `4 log lines from ${m.name}` });
      expect(lines.every((l) => line.test(l)), lines.join('\n')).toBe(true);
      expect(new Set(lines.map((l) => line.exec(l)![1]))).toEqual(new Set([w4, w5]));
    }
    // A follower hears from both workers, then from the manager when one of them goes away: it
    // ends naming that node rather than waiting for ever for lines that will not come.
    const m = await manager();
    const heardFrom = new Set<string>();
    const followed = m.api(
      (client) =>
        new Promise<grpc.ServiceError>((resolve, reject) => {
          const call = client.control.ServiceLogs({ service: 'talk', follow: true, tail: -1, since_ms: 0 });
          call.on('data', (l: { task_name: string }) => heardFrom.add(l.task_name.split('@')[1]));
          call.on('error', resolve);
          call.on('end', () => reject(new Error('the followed logs ended without saying why')));
        }),
    );
    await cluster.waitFor(async () => heardFrom.size === 2, { what: 'the follower to print lines from both workers' });
    await h('h5').kill('SIGKILL');
    try {
      const ended = await followed;
      expect(ended.code).toBe(grpc.status.UNAVAILABLE);
      expect(ended.details).toMatch(new RegExp(`^node ${w5} (disconnected|missed its heartbeats); its task logs stopped there$`));
      const r = await cluster.waitFor(async () => {
        const res = m.shoal('service', 'logs', 'talk');
        return res.stderr.startsWith(`warning: node ${w5} is down`) && res;
      }, { what: `the logs to name ${w5} as down` });
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/^warning: node \S+ is down or not connected to any manager; the logs of talk\.\d, talk\.\d cannot be read until it is back\n$/);
      // h4's two, and more if h5's tasks were already replaced there.
      const lines = r.stdout.trim().split('\n');
      expect(lines.length).toBeGreaterThanOrEqual(2);
      expect(lines.every((l) => line.exec(l)?.[1] === w4), r.stdout).toBe(true);
    } finally {
      await h('h5').start();
    }
    await cluster.waitFor(async () => (await nodes()).every((n) => n.status!.state === 'NODE_READY'), { what: 'h5 back' });
  });

  it('promotes a worker to a manager (an etcd member) and demotes it again', async () => {
    const m = await manager();
    m.ok('node', 'promote', h('h4').hostname);
    await cluster.waitFor(async () => (await info(h('h4'))).manager, { what: 'h4 running as a manager', timeoutMs: 120_000 });
    await cluster.waitFor(async () => (await nodeOf(h('h4')))!.manager_status?.reachability === 'reachable', {
      what: 'h4 reachable as a manager',
    });
    expect(h('h4').ok('service', 'ls')).toMatch(/NAME/);
    (await manager()).ok('node', 'demote', h('h4').hostname);
    await cluster.waitFor(async () => !(await info(h('h4'))).manager, { what: 'h4 a worker again', timeoutMs: 120_000 });
    expect(h('h4').shoal('service', 'ls').stderr).toMatch(/this node is not a manager; run it on a manager or use -H/);
    expect((await nodes()).filter((n) => n.spec!.role === 'manager')).toHaveLength(3);
  });
});

describe('quorum', { timeout: 300_000 }, () => {
  it('says plainly on the manager left that a quorum is lost, changes nothing, and works again once it is back', async () => {
    await createService('steady', '--replicas', '2', 'shoal-test:latest', ...IDLE);
    await cluster.waitFor(async () => (await running('steady')).length === 2, { what: '2 running' });
    const [left, ...gone] = cluster.managers;
    for (const m of gone) {
      await m.kill('SIGKILL');
      await m.killEtcd();
    }
    try {
      const sentence = /^Error: the cluster store \(etcd\) did not answer in time; more than half of the managers must be up and reachable for the cluster to be read or changed\n$/;
      for (const args of [['service', 'ls'], ['service', 'scale', 'steady=3', '-d'], ['node', 'ls']]) {
        const r = left.shoal(...args);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.stderr, args.join(' ')).toMatch(sentence);
      }
    } finally {
      for (const m of gone) await m.start();
    }
    await cluster.waitFor(() => left.api((c) => c.listServices()), { what: 'the store to answer with a quorum back' });
    await cluster.waitFor(async () => (await nodes()).every((n) => n.status!.state === 'NODE_READY'), { what: 'every node Ready again' });
    // The scale refused without a quorum did not happen later either.
    expect(JSON.parse(left.ok('service', 'inspect', 'steady'))[0].spec.mode.replicated.replicas).toBe(2);
  });
});

describe('security', { timeout: 300_000 }, () => {
  const controlClient = (host: TestHost, creds: { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions }) =>
    new (shoalProto().Control)(`${host.addr}:2377`, creds.credentials, creds.options);
  const listServices = (client: grpc.Client) =>
    new Promise<grpc.ServiceError | null>((resolve) =>
      (client as unknown as { ListServices: Function }).ListServices({}, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null) => resolve(err)),
    );
  const nodeCerts = (host: TestHost) => {
    const dir = path.join(host.dataDir, 'certificates');
    return { caPem: fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8'), certPem: fs.readFileSync(path.join(dir, 'node.crt'), 'utf8'), keyPem: fs.readFileSync(path.join(dir, 'node.key'), 'utf8') };
  };

  it('refuses a client without a certificate and a worker certificate at the control API', async () => {
    const certs = nodeCerts(h('h5'));
    const anonymous = controlClient(h('h1'), clientCredentials({ caPem: certs.caPem }));
    const err = await listServices(anonymous);
    anonymous.close();
    expect(err?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err?.details).toMatch(/needs a client certificate of this cluster/);
    const worker = controlClient(h('h1'), clientCredentials(certs));
    const denied = await listServices(worker);
    worker.close();
    expect(denied?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(denied?.details).toMatch(/a worker certificate cannot use the control API/);
  });

  it('serves a remote CLI with an admin client certificate', async () => {
    const dir = path.join(fixture.work, 'admin');
    (await manager()).ok('ca', 'client-cert', '--out', dir);
    const tls = ['--tlscacert', path.join(dir, 'ca.pem'), '--tlscert', path.join(dir, 'cert.pem'), '--tlskey', path.join(dir, 'key.pem')];
    const out = h('h5').exec(process.execPath, path.join(__dirname, '..', '..', 'dist', 'src', 'cli', 'main.js'), '-H', `tcp://${h('h2').addr}:2377`, ...tls, 'node', 'ls');
    expect(out.code).toBe(0);
    expect(out.stdout.split('\n').filter((l) => /Ready/.test(l))).toHaveLength(5);
  });

  it('refuses wrong and rotated tokens, and joins with the current one', async () => {
    const worker = h('h5');
    worker.ok('leave');
    await cluster.waitFor(async () => (await nodeOf(worker))?.status?.state === 'NODE_DOWN', { what: 'h5 down after leaving' });
    const m = await manager();
    const old = m.ok('join-token', '-q', 'worker').trim();
    m.ok('join-token', '--rotate', 'worker');
    const fresh = m.ok('join-token', '-q', 'worker').trim();
    const join = (token: string) => worker.shoal('join', '--token', token, `${h('h1').addr}:2377`);
    expect(join('SWMTKN-1-nonsense').stderr).toMatch(/token/i);
    const rotated = join(old);
    expect(rotated.code).not.toBe(0);
    expect(rotated.stderr).toMatch(/join token is not valid for this cluster/);
    const unreachable = worker.shoal('join', '--token', fresh, '10.255.255.1:2377');
    expect(unreachable.code).not.toBe(0);
    expect(unreachable.stderr).toMatch(/cannot reach a shoal manager at 10\.255\.255\.1:2377|no route/);
    expect(worker.shoal('join', '--token', fresh, '--advertise-addr', '192.0.2.77', `${h('h1').addr}:2377`).stderr).toMatch(/not an address of this host/);
    worker.ok('join', '--token', fresh, `${h('h1').addr}:2377`);
    expect(join(fresh).stderr).toMatch(/already part of a cluster/);
    const stale = (await nodes()).find((n) => n.description!.hostname === worker.hostname && n.status!.state === 'NODE_DOWN');
    if (stale) m.ok('node', 'rm', stale.id);
    await cluster.waitFor(async () => (await nodes()).filter((n) => n.status!.state === 'NODE_READY').length === 5, { what: '5 Ready nodes again' });
  });

  it('refuses node operations that would hurt the cluster, each with one sentence', async () => {
    const m = await manager();
    const fail = (...args: string[]) => {
      const r = m.shoal(...args);
      expect(r.code).not.toBe(0);
      return r.stderr.trim();
    };
    expect(fail('node', 'rm', h('h4').hostname)).toMatch(/is Ready: stop it or have it leave first.*--force/);
    expect(fail('node', 'rm', h('h2').hostname)).toMatch(/is a manager; demote it first/);
    expect(fail('node', 'promote', 'no-such-node')).toMatch(/node no-such-node not found/);
    expect(fail('node', 'update', '--availability', 'sometimes', h('h4').hostname)).toMatch(/availability: must be one of active, pause, drain/);
    expect(fail('init')).toMatch(/already part of a cluster/);
    expect((await info(h('h4'))).node_id).toMatch(/\S/);
  });
});
