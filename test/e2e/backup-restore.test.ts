import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_TEST_TIMEOUT_MS, TestNode } from '../helpers/test-node';
import { IDLE } from '../helpers/workloads';
import { testImage } from './images';
import { apiOf, closeApi, runningOf, waitFor } from './observe';
import { leftoversOf, removeServices, useE2eNode } from './use-node';

// `a` is the cluster that is backed up; `b` a node in no cluster that the backup is restored on.
const a = useE2eNode();
const b = new TestNode();

beforeAll(async () => {
  await b.start();
  b.ok('image', 'load', testImage(b));
}, NODE_TEST_TIMEOUT_MS);

afterAll(async () => {
  try {
    await removeServices(b);
    closeApi(b);
    await b.destroy();
  } finally {
    expect(leftoversOf(b)).toEqual([]);
  }
}, NODE_TEST_TIMEOUT_MS);

/** A snapshot of a's cluster, made once: etcd writes of the tests do not change what it holds. */
const snapshotOf = (node: TestNode, name: string) => path.join(node.dir, name);
const etcdctlStatus = (file: string) => JSON.parse(execFileSync('etcdctl', ['snapshot', 'status', file, '-w', 'json'], { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8' }));
const filesIn = (dir: string) => fs.readdirSync(dir).sort();

describe('shoal swarm backup and restore', () => {
  it('backup says why it cannot save, and leaves nothing behind', () => {
    expect(b.fails('swarm', 'backup', path.join(b.dir, 'x.db'))).toBe(
      'Error: this node is not part of a cluster yet: run `shoal init`, or `shoal join` an existing one\n',
    );
    const missing = path.join(a.dir, 'no-such-dir', 'x.db');
    expect(a.fails('swarm', 'backup', missing)).toBe(`Error: cannot write ${missing}: ${path.join(a.dir, 'no-such-dir')} does not exist\n`);
    expect(a.fails('swarm', 'backup', a.dir)).toBe(`Error: cannot write ${a.dir}: it is a directory; name a file\n`);
    expect(filesIn(b.dir).filter((f) => f.includes('x.db'))).toEqual([]);
  });

  it('restore refuses a node in a cluster, a missing file and a file that is not a whole snapshot, and changes nothing', async () => {
    const file = snapshotOf(a, 'refusals.db');
    a.ok('swarm', 'backup', file);
    expect(a.fails('swarm', 'restore', file)).toBe('Error: this node is already part of a cluster; run `shoal leave --force` first to restore a cluster here\n');

    const missing = path.join(b.dir, 'missing.db');
    expect(b.fails('swarm', 'restore', missing)).toBe(`Error: cannot read ${missing}: no such file\n`);
    const truncated = path.join(b.dir, 'truncated.db');
    fs.writeFileSync(truncated, fs.readFileSync(file).subarray(0, 8192));
    expect(b.fails('swarm', 'restore', truncated)).toBe(`Error: ${truncated} is not a whole etcd snapshot: its SHA-256 checksum does not match (truncated or damaged)\n`);
    const log = path.join(b.dir, 'shoald.log');
    expect(b.fails('swarm', 'restore', log)).toMatch(new RegExp(`^Error: ${log} is not an etcd snapshot \\(`));

    // The daemon checks what it is sent too, whatever client sends it.
    const sent = fs.readFileSync(file);
    await expect(
      new Promise((resolve, reject) => {
        const call = apiOf(b).control.Restore((err, res) => (err ? reject(err) : resolve(res)));
        call.write({ advertise_addr: '' });
        call.write({ data: sent.subarray(0, sent.length - 1) });
        call.end();
      }),
    ).rejects.toMatchObject({ details: 'the file is not a whole etcd snapshot: its SHA-256 checksum does not match (truncated or damaged)' });

    expect(JSON.parse(b.ok('info', '--format', 'json')).cluster_id).toBe('');
    expect(fs.existsSync(path.join(b.dataDir, 'etcd'))).toBe(false);
    expect(filesIn(b.dataDir).filter((f) => f.startsWith('restore-'))).toEqual([]);
  });

  it(
    'a backup taken through a remote manager restores on a fresh node, which runs the services as the only manager',
    async () => {
      a.ok('service', 'create', '--name', 'web', '--replicas', '2', 'shoal-test:latest', ...IDLE);
      a.ok('service', 'create', '--name', 'db', '--env', 'ROLE=primary', 'shoal-test:latest', ...IDLE);
      a.ok('network', 'create', '--subnet', '10.231.0.0/24', 'backend');
      const aInfo = JSON.parse(a.ok('info', '--format', 'json'));

      // Through the cluster port with an admin certificate, as from an operator's machine.
      const certs = path.join(a.dir, 'admin');
      a.ok('ca', 'client-cert', '--out', certs);
      const file = snapshotOf(a, 'cluster.db');
      const remote = a.shoal(
        '-H', `tcp://${aInfo.advertise_addr}`, '--tlscacert', `${certs}/ca.pem`, '--tlscert', `${certs}/cert.pem`, '--tlskey', `${certs}/key.pem`,
        'swarm', 'backup', file,
      );
      expect(remote.code, remote.stderr).toBe(0);
      const saved = remote.stdout.match(/^Saved the cluster state to (.+): ([\d.]+K?i?B), etcd revision (\d+), (\d+) keys\.\nIt holds the cluster CA keys and the join tokens: keep it as safe as a manager\.\n$/);
      expect(saved, remote.stdout).not.toBeNull();
      expect(saved![1]).toBe(file);
      const status = etcdctlStatus(file);
      expect(Number(saved![3])).toBe(status.revision);
      expect(Number(saved![4])).toBe(status.totalKey);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      expect(filesIn(path.dirname(file)).filter((f) => f.endsWith('.part'))).toEqual([]);

      // The services, their ids and specs, the network and the join tokens come back on b.
      const restored = b.ok('swarm', 'restore', file);
      expect(restored).toContain(`Cluster ${aInfo.cluster_id} restored from ${file}: current node (`);
      const bInfo = JSON.parse(b.ok('info', '--format', 'json'));
      expect(bInfo).toMatchObject({ cluster_id: aInfo.cluster_id, manager: true, role: 'manager' });
      expect(bInfo.node_id).not.toBe(aInfo.node_id);
      const servicesOf = async (n: TestNode) => (await apiOf(n).listServices()).services.map((s) => ({ id: s.service!.id, spec: s.service!.spec })).sort((x, y) => x.id.localeCompare(y.id));
      expect(await servicesOf(b)).toEqual(await servicesOf(a));
      expect((await apiOf(b).listNetworks()).networks.map((n) => [n.spec!.name, n.subnet])).toEqual([['backend', '10.231.0.0/24']]);
      expect(b.ok('join-token', '-q', 'worker')).toBe(a.ok('join-token', '-q', 'worker'));
      expect(b.ok('join-token', '-q', 'manager')).toBe(a.ok('join-token', '-q', 'manager'));

      // a, the old manager, is gone from the restored cluster; b, its only manager, becomes leader
      // and runs the tasks that were a's.
      const nodes = (await apiOf(b).listNodes()).nodes;
      expect(nodes.map((n) => n.id)).toEqual([bInfo.node_id]);
      await waitFor('b to lead the restored cluster', async () => (await apiOf(b).info()).leader, 60_000);
      await waitFor('web (2) and db (1) to run on b', async () => (await runningOf(b, 'web')).length === 2 && (await runningOf(b, 'db')).length === 1, 90_000);
      expect(new Set([...(await runningOf(b, 'web')), ...(await runningOf(b, 'db'))].map((t) => t.node_id))).toEqual(new Set([bInfo.node_id]));
      expect(b.containerIds()).toHaveLength(3);

      // The restored cluster works as any: it takes changes and backs up.
      b.ok('service', 'scale', 'web=1');
      await waitFor('b to keep 2 containers', () => b.containerIds().length === 2, 60_000);
      const again = snapshotOf(b, 'again.db');
      expect(b.ok('swarm', 'backup', again)).toMatch(/^Saved the cluster state to /);
      expect(etcdctlStatus(again).revision).toBeGreaterThan(status.revision);
    },
    NODE_TEST_TIMEOUT_MS,
  );
});
