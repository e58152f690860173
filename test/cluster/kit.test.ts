import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../helpers/cluster';
import { buildTestImage } from '../helpers/test-node';

// The kit the cluster tests stand on (deploy/cluster.sh through TestCluster): two bare hosts,
// each a network namespace on one bridge with its own shoald, nobody joined.
let cluster: TestCluster | undefined;
let work: string;

const hosts = () => cluster!.hosts;
const ping = (from: number, to: number) => hosts()[from].exec('busybox', 'ping', '-c', '1', '-W', '2', hosts()[to].addr).code === 0;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-kit-'));
  cluster = await TestCluster.create({ managers: 2, join: false });
}, 180_000);

afterAll(async () => {
  fs.rmSync(work, { recursive: true, force: true });
  await cluster?.destroy();
}, 180_000);

describe('a cluster on one machine', () => {
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

  it('runs a shoald in every host that answers on its own socket', () => {
    for (const h of hosts()) {
      const info = JSON.parse(h.ok('info', '--format', 'json'));
      expect(info.node_id).toMatch(/\S/);
    }
    expect(JSON.parse(hosts()[0].ok('info', '--format', 'json')).node_id).not.toBe(JSON.parse(hosts()[1].ok('info', '--format', 'json')).node_id);
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

  it('runs a container from a shoald inside a namespace, in that host’s cgroups and runc root', async () => {
    const h1 = hosts()[0];
    // `init --advertise-addr` comes with the cluster work; until then a plain init.
    const advertise = h1.shoal('init', '--help').stdout.includes('--advertise-addr');
    h1.ok('init', ...(advertise ? ['--advertise-addr', h1.addr] : []));
    expect(await cluster!.waitFor(() => cluster!.leader(), { what: 'a leader' })).toBe(h1);
    h1.ok('image', 'load', buildTestImage(work));
    h1.ok('service', 'create', '--name', 'kit', '--replicas', '1', 'shoal-test:latest', 'sleep', '1000');
    const [id] = h1.containerIds();
    expect(h1.containerIds()).toHaveLength(1);
    expect(hosts()[1].containerIds()).toEqual([]);
    expect(fs.existsSync(path.join('/sys/fs/cgroup/memory', h1.cgroupParent, id))).toBe(true);
    expect(execFileSync('runc', ['--root', h1.runcRoot, 'state', id], { encoding: 'utf8' })).toMatch(/"status": "running"/);
  });

  it('kills a host’s shoald and etcd, and starts it again with its containers kept', async () => {
    const h1 = hosts()[0];
    const before = h1.containerIds();
    await h1.kill('SIGKILL');
    expect(h1.shoal('info').code).not.toBe(0);
    await h1.killEtcd();
    expect(h1.containerIds()).toEqual(before);
    await h1.start();
    await cluster!.waitFor(() => JSON.parse(h1.ok('service', 'ps', 'kit', '--format', 'json')).some((t: { status: { state: string } }) => t.status.state === 'RUNNING'), {
      what: 'the kit service running again',
    });
    expect(h1.containerIds()).toEqual(before);
  });

  it('destroys everything it made', async () => {
    const c = cluster!;
    const procs = c.hosts.flatMap((h) => [
      fs.readFileSync(path.join(path.dirname(h.socket), 'shoald.pid'), 'utf8').trim(),
      ...execFileSync('ip', ['netns', 'pids', h.netns], { encoding: 'utf8' }).split('\n').filter(Boolean),
    ]);
    // A pid with its start time: the same process, not a later one given the same number.
    const started = (pid: string) => {
      try {
        return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[19];
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
