import * as net from 'node:net';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { quietLogger } from '../../src/common/logger';
import { StoreCache } from '../../src/manager/store/cache';
import { Store, type Kind, type Op } from '../../src/manager/store/store';
import { service, task } from '../fixtures';
import { node } from '../scheduler/fixtures';
import { startEtcd, type TestEtcd } from '../helpers/etcd';

/**
 * A TCP relay in front of etcd that a test can cut and restore, so that the cache's watch loses
 * its connection while etcd itself keeps running and taking writes.
 */
class Relay {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly target: number) {}

  async open(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', r));
    this.port = (this.server!.address() as net.AddressInfo).port;
  }

  async cut(): Promise<void> {
    const closed = new Promise((r) => this.server?.close(r));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

const svc = service(2);
const create = (kind: Kind, obj: { id: string; version: number }): Op => ({ type: 'create', kind, obj });

describe('store cache (real etcd)', () => {
  let etcd: TestEtcd;
  let relay: Relay;
  let client: Etcd3;
  let store: Store;
  let cache: StoreCache;
  const changes: string[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
    relay = new Relay(Number(new URL(etcd.url).port));
    await relay.open();
    client = new Etcd3({ hosts: `http://127.0.0.1:${relay.port}` });
    // What is there before the cache starts is loaded, not watched. Keys under the prefix that
    // are not Store objects (the dispatcher's leased sessions) are left out.
    await etcd.client.put('/shoal/v1/managers-alive/m1').value('1');
    await new Store(etcd.client).commit([create('services', { ...svc }), create('tasks', task(svc, 1, 'RUNNING', { id: 'before', node_id: 'n1' }))]);
    store = new Store(client);
    cache = new StoreCache(store, quietLogger());
    cache.onChange((kind, id) => changes.push(`${kind}/${id}`));
    await cache.start();
  });

  afterAll(async () => {
    await cache?.stop();
    client?.close();
    await relay?.cut();
    await etcd?.stop();
  });

  it('loads every object at one revision, with typed reads', () => {
    expect(cache.services().map((s) => s.id)).toEqual([svc.id]);
    expect(cache.tasksOfService(svc.id).map((t) => t.id)).toEqual(['before']);
    expect(cache.tasksOfNode('n1').map((t) => t.id)).toEqual(['before']);
    expect(cache.get<Task__Output>('tasks', 'before')!.version).toBeGreaterThan(0);
    expect(changes).toEqual(['reload/']);
  });

  it('sees puts and deletes made by anyone, keeping its indexes', async () => {
    const direct = new Store(etcd.client);
    const t = task(svc, 2, 'PENDING', { id: 'pending', node_id: '' });
    await etcd.client.put('/shoal/v1/sessions/n1').value('not json');
    await direct.commit([create('tasks', t), create('nodes', node('n1'))]);
    await expect.poll(() => cache.tasksOfNode('').map((x) => x.id)).toEqual(['pending']);
    expect(cache.nodes().map((n) => n.id)).toEqual(['n1']);
    expect(changes).toContain('tasks/pending');
    expect(changes.filter((c) => c.startsWith('sessions') || c.startsWith('managers-alive'))).toEqual([]);

    const assigned: Task__Output = { ...t, node_id: 'n1' };
    await direct.commit([{ type: 'update', kind: 'tasks', obj: assigned }]);
    await expect.poll(() => cache.tasksOfNode('n1').map((x) => x.id).sort()).toEqual(['before', 'pending']);
    expect(cache.tasksOfNode('')).toEqual([]);

    const stored = cache.get<Task__Output>('tasks', 'pending')!;
    await direct.commit([{ type: 'delete', kind: 'tasks', id: 'pending', version: stored.version }]);
    await expect.poll(() => cache.get('tasks', 'pending')).toBeUndefined();
    expect(cache.tasksOfService(svc.id).map((x) => x.id)).toEqual(['before']);
  });

  it('shows its own writes once settled, at the revision they were written', async () => {
    const t = task(svc, 2, 'PENDING', { id: 'mine' });
    await cache.commit([create('tasks', t)]);
    await cache.settled();
    expect(cache.get<Task__Output>('tasks', 'mine')!.version).toBe(t.version);
    expect(cache.currentRevision).toBeGreaterThanOrEqual(t.version);
  });

  it('catches up with writes outside its prefix (a manager campaigning) without waiting for a write under it', async () => {
    await etcd.client.put('election/shoal/leader/campaigner').value('m2');
    const { header } = await etcd.client.get('election/shoal/leader/campaigner').exec();
    // A watch of the prefix alone never reached that revision: the wait gave up, "the cluster store cache is behind".
    await expect(cache.caughtUp()).resolves.toBeUndefined();
    expect(cache.currentRevision).toBeGreaterThanOrEqual(Number(header.revision));
    expect(changes.filter((c) => c.includes('election') || c.includes('campaigner'))).toEqual([]);
  });

  it('loads everything again on refresh, as fresh as a read', async () => {
    const reloads = changes.filter((c) => c === 'reload/').length;
    await new Store(etcd.client).commit([create('tasks', task(svc, 5, 'PENDING', { id: 'just-written' }))]);
    await cache.refresh();
    expect(cache.get('tasks', 'just-written')).toBeDefined();
    expect(changes.filter((c) => c === 'reload/')).toHaveLength(reloads + 1);
    await cache.settled();
  });

  it('loads everything again when its watch cannot resume after a compaction', async () => {
    const reloads = changes.filter((c) => c === 'reload/').length;
    await relay.cut();
    // While the cache is cut off: a create, then a delete, and a compaction up to the delete, so
    // the revision the watch would resume from (the create's) is gone.
    const direct = new Store(etcd.client);
    const mine = cache.get<Task__Output>('tasks', 'mine')!;
    await direct.commit([create('tasks', task(svc, 3, 'PENDING', { id: 'while-away' }))]);
    await direct.commit([{ type: 'delete', kind: 'tasks', id: 'mine', version: mine.version }]);
    const { header } = await etcd.client.get('/anything').exec();
    await etcd.client.kv.compact({ revision: header.revision, physical: true });
    await relay.open();

    await expect.poll(() => changes.filter((c) => c === 'reload/').length, { timeout: 30_000 }).toBe(reloads + 1);
    expect(cache.get('tasks', 'while-away')).toBeDefined();
    expect(cache.get('tasks', 'mine')).toBeUndefined();
    expect(cache.currentRevision).toBeGreaterThanOrEqual(Number(header.revision));

    // And it watches again from there.
    await direct.commit([create('tasks', task(svc, 4, 'PENDING', { id: 'after' }))]);
    await expect.poll(() => cache.get('tasks', 'after')).toBeDefined();
  });
});
