import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRootCA, issueKeyPair } from '../../src/ca/certificates';
import { quietLogger } from '../../src/common/logger';
import { connectEtcd } from '../../src/manager/etcd/client';
import { EtcdSupervisor } from '../../src/manager/etcd/supervisor';
import { etcdTlsFiles, writeEtcdTls } from '../../src/manager/manager-role';
import { Store, type Versioned } from '../../src/manager/store/store';
import { freePort } from '../helpers/ports';
import { leftovers, testMarker } from '../helpers/runtime';
import { waitFor } from '../helpers/wait';

interface Thing extends Versioned {
  n: number;
}

describe('etcd store and supervisor (real etcd)', () => {
  const marker = testMarker();
  let dir: string;
  let supervisor: EtcdSupervisor;
  let etcd: Etcd3;
  let store: Store;
  let opts: ConstructorParameters<typeof EtcdSupervisor>[0];
  const etcdPid = () => Number(fs.readFileSync(path.join(dir, 'etcd.pid'), 'utf8'));
  /** A key of this test's own, so that tests share the member but no data. */
  const key = (name: string) => `${expect.getState().currentTestName!.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}-${name}`;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `${marker}-etcd-`));
    // The member speaks only TLS, with a certificate from an etcd CA of its own, as a manager's does.
    const ca = await createRootCA('shoal etcd CA (test)');
    const member = await issueKeyPair(ca, { nodeId: 'n1', role: 'manager', clusterId: marker }, { ips: ['127.0.0.1'], server: true, client: true });
    writeEtcdTls(dir, { caPem: ca.certPem, ...member });
    const tls = etcdTlsFiles(dir);
    opts = { dataDir: dir, name: 'n1', advertiseHost: '127.0.0.1', clientPort: await freePort(), peerPort: await freePort(), tls, log: quietLogger() };
    supervisor = new EtcdSupervisor(opts);
    await supervisor.start();
    etcd = connectEtcd(supervisor.clientUrl, tls);
    store = new Store(etcd);
  });

  afterAll(async () => {
    try {
      etcd?.close();
      await supervisor?.stop();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(leftovers(marker)).toEqual([]);
  });

  it('creates once and refuses a second create of the same id', async () => {
    const id = key('a');
    const obj: Thing = { id, version: 0, n: 1 };
    await store.commit([{ type: 'create', kind: 'tasks', obj }]);
    expect(obj.version).toBeGreaterThan(0);
    await expect(store.commit([{ type: 'create', kind: 'tasks', obj: { id, version: 0, n: 2 } as Thing }])).rejects.toThrow(/already exists/);
    expect((await store.get<Thing>('tasks', id))!.n).toBe(1);
  });

  it('updates by compare-and-swap: a stale version loses and changes nothing', async () => {
    const id = key('a');
    await store.commit([{ type: 'create', kind: 'tasks', obj: { id, version: 0, n: 1 } as Thing }]);
    const a = (await store.get<Thing>('tasks', id))!;
    const stale = { ...a };
    await store.commit([{ type: 'update', kind: 'tasks', obj: { ...a, n: 10 } as Thing }]);
    await expect(store.commit([{ type: 'update', kind: 'tasks', obj: { ...stale, n: 99 } as Thing }])).rejects.toThrow(/changed by someone else/);
    expect((await store.get<Thing>('tasks', id))!.n).toBe(10);
  });

  it('applies a batch atomically: one conflict and none of it is written', async () => {
    const [ida, idb] = [key('a'), key('b')];
    await store.commit([{ type: 'create', kind: 'tasks', obj: { id: ida, version: 0, n: 1 } as Thing }]);
    const a = (await store.get<Thing>('tasks', ida))!;
    await expect(
      store.commit([
        { type: 'create', kind: 'tasks', obj: { id: idb, version: 0, n: 1 } as Thing },
        { type: 'update', kind: 'tasks', obj: { ...a, version: a.version - 1, n: 5 } as Thing },
      ]),
    ).rejects.toThrow();
    expect(await store.get('tasks', idb)).toBeNull();
    expect(await store.get<Thing>('tasks', ida)).toEqual(a);
  });

  it('reports changes through watch', async () => {
    const id = key('s');
    const seen: string[] = [];
    const stop = await store.watch((kind, changed) => seen.push(`${kind}/${changed}`));
    try {
      await store.commit([{ type: 'create', kind: 'services', obj: { id, version: 0 } }]);
      await expect.poll(() => seen).toContain(`services/${id}`);
    } finally {
      await stop();
    }
  });

  it('restarts the member when it dies, keeping the data', async () => {
    const id = key('a');
    await store.commit([{ type: 'create', kind: 'tasks', obj: { id, version: 0, n: 10 } as Thing }]);
    const pid = etcdPid();
    process.kill(pid, 'SIGKILL');
    await waitFor(() => etcdPid() !== pid, { what: 'the supervisor to start a new etcd member', timeoutMs: 15_000 });
    await waitFor(async () => (await store.get<Thing>('tasks', id))?.n === 10, { what: `${id} to be readable from the new member`, timeoutMs: 15_000 });
  });

  it('adopts a running member instead of starting a second one', async () => {
    const pid = etcdPid();
    const second = new EtcdSupervisor(opts);
    try {
      await second.start();
      expect(etcdPid()).toBe(pid);
    } finally {
      // Hand the member back to the first supervisor, which stops it in afterAll: the second one
      // only stops watching, whatever happened above.
      clearInterval((second as unknown as { timer: NodeJS.Timeout | undefined }).timer);
    }
  });
});
