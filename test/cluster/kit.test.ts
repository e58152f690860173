import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../helpers/cluster';
import { buildTestImage } from '../helpers/test-node';
import { IDLE } from '../helpers/workloads';

// The kit the cluster tests stand on (deploy/cluster.sh through TestCluster): a manager and a
// worker, each a network namespace on one bridge with its own shoald.
let cluster: TestCluster | undefined;
let work: string;

const hosts = () => cluster!.hosts;
const ping = (from: number, to: number) => hosts()[from].exec('busybox', 'ping', '-c', '1', '-W', '2', hosts()[to].addr).code === 0;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-kit-'));
  cluster = await TestCluster.create({ managers: 1, workers: 1 });
}, 180_000);

afterAll(async () => {
  fs.rmSync(work, { recursive: true, force: true });
  await cluster?.destroy();
}, 180_000);

// Each step waits on real daemons; on a loaded 2-core machine a service create alone can take a minute.
describe('a cluster on one machine', { timeout: 180_000 }, () => {
  it('gives every host its own name, address, namespace, socket, data dir, runc root and cgroup parent', () => {
    expect(hosts().map((h) => h.name)).toEqual(['h1', 'h2']);
    for (const key of ['addr', 'netns', 'socket', 'dataDir', 'runcRoot', 'cgroupParent', 'hostname'] as const) {
      expect(new Set(hosts().map((h) => h[key])).size).toBe(2);
    }
    for (const h of hosts()) {
      expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).toContain(h.netns);
      expect(h.exec('ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0').stdout).toContain(`inet ${h.addr}/`);
      expect(h.exec('ip', '-o', 'link', 'show', 'dev', 'lo').stdout).toMatch(/state UNKNOWN|,UP/);
    }
  });

  it('connects the hosts across the bridge, and nothing beyond the subnet', () => {
    expect(ping(0, 1)).toBe(true);
    expect(ping(1, 0)).toBe(true);
    expect(hosts()[0].exec('ip', '-4', 'route').stdout).not.toMatch(/default/);
  });

  it('runs a shoald in every host, joined into one cluster under the host’s name and address', async () => {
    const [h1, h2] = hosts();
    expect([h1.role, h2.role]).toEqual(['manager', 'worker']);
    expect(JSON.parse(h2.ok('info', '--format', 'json')).manager).toBe(false);
    type Node = { description: { hostname: string }; status: { state: string; addr: string } };
    const nodes = await cluster!.waitFor(() => {
      const list: Node[] = JSON.parse(h1.ok('node', 'ls', '--format', 'json'));
      return list.length === 2 && list.every((n) => n.status.state === 'NODE_READY') && list;
    }, { what: 'two Ready nodes' });
    expect(nodes.map((n) => [n.description.hostname, n.status.addr]).sort()).toEqual([
      [h1.hostname, h1.addr],
      [h2.hostname, h2.addr],
    ]);
  });

  it('cuts a host off from the others and heals it again', async () => {
    const [a, b] = hosts();
    await b.cutLink();
    expect(ping(0, 1)).toBe(false);
    expect(ping(1, 0)).toBe(false);
    // Its own loopback, and with it its daemon's etcd, still works.
    expect(b.exec('busybox', 'ping', '-c', '1', '-W', '2', '127.0.0.1').code).toBe(0);
    expect(b.shoal('info').code).toBe(0);
    await b.healLink();
    await cluster!.waitFor(() => ping(0, 1) && ping(1, 0), { what: 'ping across the healed link', timeoutMs: 20_000 });
    expect(a.shoal('info').code).toBe(0);
  });

  it('runs a container on the worker, in its cgroups and runc root', async () => {
    const [h1, h2] = hosts();
    expect(await cluster!.waitFor(() => cluster!.leader(), { what: 'a leader' })).toBe(h1);
    const image = buildTestImage(work);
    for (const h of hosts()) h.ok('image', 'load', image);
    h1.ok('service', 'create', '--name', 'kit', '--replicas', '1', '--constraint', `node.hostname==${h2.hostname}`, 'shoal-test:latest', ...IDLE);
    const [id] = h2.containerIds();
    expect(h2.containerIds()).toHaveLength(1);
    expect(h1.containerIds()).toEqual([]);
    // The memory controller's hierarchy: its own on a v1 or hybrid host, the unified one on v2.
    expect(['/sys/fs/cgroup/memory', '/sys/fs/cgroup'].some((root) => fs.existsSync(path.join(root, h2.cgroupParent, id)))).toBe(true);
    expect(execFileSync('runc', ['--root', h2.runcRoot, 'state', id], { encoding: 'utf8' })).toMatch(/"status": "running"/);
  });

  it('kills the manager’s shoald and etcd, and starts it again; the worker’s container runs on', async () => {
    const [h1, h2] = hosts();
    const before = h2.containerIds();
    await h1.kill('SIGKILL');
    expect(h1.shoal('info').code).not.toBe(0);
    await h1.killEtcd();
    await h1.start();
    await cluster!.waitFor(async () => (await h1.api((c) => c.listTasks({ service: 'kit' }))).tasks.some((t) => t.status!.state === 'RUNNING'), {
      what: 'the kit service running again',
    });
    expect(h2.containerIds()).toEqual(before);
  });

  it('destroys everything it made', async () => {
    const c = cluster!;
    const procs = c.hosts.flatMap((h) => [
      fs.readFileSync(path.join(path.dirname(h.socket), 'shoald.pid'), 'utf8').trim(),
      ...execFileSync('ip', ['netns', 'pids', h.netns], { encoding: 'utf8' }).split('\n').filter(Boolean),
    ]);
    // A pid with its start time: the same process, not a later one given the same number. A zombie
    // has exited and holds nothing; whether it is reaped at once is up to whoever adopted it.
    const started = (pid: string) => {
      try {
        const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
        return fields[0] === 'Z' ? undefined : fields[19];
      } catch {
        return undefined;
      }
    };
    const pids = procs.map((pid) => ({ pid, start: started(pid) }));
    // shoald, etcd, conmon and the spawner at least
    expect(pids.filter((p) => p.start).length).toBeGreaterThan(3);
    cluster = undefined;
    await c.destroy();
    const left: string[] = [];
    const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
    for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) if (line.includes(c.name)) left.push(`mount ${line}`);
    const cgroups = execFileSync('find', ['/sys/fs/cgroup', '-maxdepth', '3', '-name', `*${c.name}*`], { encoding: 'utf8' }).trim();
    if (cgroups) left.push(...cgroups.split('\n').map((d) => `cgroup ${d}`));
    for (const h of c.hosts) {
      if (netns.includes(h.netns)) left.push(`netns ${h.netns}`);
      if (links.includes(`${h.netns}@`) || links.includes(`${h.netns}:`)) left.push(`link ${h.netns}`);
      // The runc root goes with its state: no container is left to runc.
      for (const dir of [h.dataDir, h.runcRoot, path.dirname(h.socket)]) if (fs.existsSync(dir)) left.push(`dir ${dir}`);
    }
    if (links.includes(`${c.name}-br`)) left.push(`bridge ${c.name}-br`);
    for (const p of pids) if (p.start && started(p.pid) === p.start) left.push(`process ${p.pid}`);
    expect(left).toEqual([]);
  });
});
