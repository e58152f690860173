import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quietLogger } from '../../src/common/logger';
import { EtcdSupervisor } from '../../src/manager/etcd/supervisor';
import { Store, type Versioned } from '../../src/manager/store/store';
import { freePort } from '../helpers/ports';

interface Thing extends Versioned {
  n: number;
}

describe('etcd store and supervisor (real etcd)', () => {
  let dir: string;
  let supervisor: EtcdSupervisor;
  let etcd: Etcd3;
  let store: Store;
  let opts: ConstructorParameters<typeof EtcdSupervisor>[0];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-etcd-'));
    opts = { dataDir: dir, name: 'n1', clientPort: await freePort(), peerPort: await freePort(), log: quietLogger() };
    supervisor = new EtcdSupervisor(opts);
    await supervisor.start();
    etcd = new Etcd3({ hosts: supervisor.clientUrl });
    store = new Store(etcd);
  });

  afterAll(async () => {
    etcd?.close();
    await supervisor?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('creates once and refuses a second create of the same id', async () => {
    const obj: Thing = { id: 'a', version: 0, n: 1 };
    await store.commit([{ type: 'create', kind: 'tasks', obj }]);
    expect(obj.version).toBeGreaterThan(0);
    await expect(store.commit([{ type: 'create', kind: 'tasks', obj: { id: 'a', version: 0, n: 2 } as Thing }])).rejects.toThrow(/already exists/);
    expect((await store.get<Thing>('tasks', 'a'))!.n).toBe(1);
  });

  it('updates by compare-and-swap: a stale version loses and changes nothing', async () => {
    const a = (await store.get<Thing>('tasks', 'a'))!;
    const stale = { ...a };
    await store.commit([{ type: 'update', kind: 'tasks', obj: { ...a, n: 10 } }]);
    await expect(store.commit([{ type: 'update', kind: 'tasks', obj: { ...stale, n: 99 } }])).rejects.toThrow(/changed by someone else/);
    expect((await store.get<Thing>('tasks', 'a'))!.n).toBe(10);
  });

  it('applies a batch atomically: one conflict and none of it is written', async () => {
    const a = (await store.get<Thing>('tasks', 'a'))!;
    const b: Thing = { id: 'b', version: 0, n: 1 };
    await expect(
      store.commit([
        { type: 'create', kind: 'tasks', obj: b },
        { type: 'update', kind: 'tasks', obj: { ...a, version: a.version - 1, n: 5 } },
      ]),
    ).rejects.toThrow();
    expect(await store.get('tasks', 'b')).toBeNull();
    expect((await store.list<Thing>('tasks')).map((t) => t.id)).toEqual(['a']);
  });

  it('reports changes through watch', async () => {
    const seen: string[] = [];
    const stop = await store.watch((kind, id) => seen.push(`${kind}/${id}`));
    await store.commit([{ type: 'create', kind: 'services', obj: { id: 's1', version: 0 } }]);
    await expect.poll(() => seen).toContain('services/s1');
    await stop();
  });

  it('restarts the member when it dies, keeping the data', async () => {
    const pid = Number(fs.readFileSync(path.join(dir, 'etcd.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    await expect.poll(() => Number(fs.readFileSync(path.join(dir, 'etcd.pid'), 'utf8')), { timeout: 15_000 }).not.toBe(pid);
    await expect.poll(async () => (await store.get<Thing>('tasks', 'a').catch(() => null))?.n, { timeout: 15_000 }).toBe(10);
  });

  it('adopts a running member instead of starting a second one', async () => {
    const pid = Number(fs.readFileSync(path.join(dir, 'etcd.pid'), 'utf8'));
    const second = new EtcdSupervisor(opts);
    await second.start();
    expect(Number(fs.readFileSync(path.join(dir, 'etcd.pid'), 'utf8'))).toBe(pid);
    // Hand the member back to the first supervisor, which stops it in afterAll.
    (second as unknown as { timer: NodeJS.Timeout }).timer.unref();
    clearInterval((second as unknown as { timer: NodeJS.Timeout }).timer);
  });
});
