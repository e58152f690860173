import { describe, expect, it } from 'vitest';
import { compactionTarget, Compactor } from '../../src/manager/compactor';
import { quietLogger } from '../../src/common/logger';
import { useEtcdStore } from '../helpers/etcd';

const INTERVAL = 60_000;

describe('compactionTarget', () => {
  it('compacts to the revision noted one interval ago, once that interval has passed', () => {
    const mark = { at: 1000, revision: 50 };
    expect(compactionTarget(undefined, 0, 1000, INTERVAL)).toBeUndefined();
    expect(compactionTarget(mark, 0, 1000 + INTERVAL - 1, INTERVAL)).toBeUndefined();
    expect(compactionTarget(mark, 0, 1000 + INTERVAL, INTERVAL)).toBe(50);
  });

  it('does not compact again to a revision already compacted', () => {
    expect(compactionTarget({ at: 0, revision: 50 }, 50, INTERVAL, INTERVAL)).toBeUndefined();
    expect(compactionTarget({ at: 0, revision: 51 }, 50, INTERVAL, INTERVAL)).toBe(51);
  });
});

describe('Compactor (real etcd)', () => {
  const real = useEtcdStore();
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('compacts etcd to the revision it noted an interval before, keeping newer history', async () => {
    const etcd = real.etcd.client;
    const first = Number((await etcd.put('/shoal/v1/tasks/t').value('1').exec()).header.revision);
    const noted = Number((await etcd.put('/shoal/v1/tasks/t').value('2').exec()).header.revision);
    const compactor = new Compactor(etcd, quietLogger(), 50);
    await compactor.pass();
    await etcd.put('/shoal/v1/tasks/t').value('3').exec();
    await sleep(60);
    await compactor.pass();

    // etcd answers a read below its compacted revision with an error saying so.
    const old = await etcd.get('/shoal/v1/tasks/t').revision(String(first)).exec().catch((e: Error) => e);
    expect(old).toBeInstanceOf(Error);
    expect((old as Error).message).toMatch(/compacted/);
    expect(await etcd.get('/shoal/v1/tasks/t').revision(String(noted)).string()).toBe('2');
    expect(await etcd.get('/shoal/v1/tasks/t').string()).toBe('3');
  });

  it('takes a revision another manager compacted past as done', async () => {
    const etcd = real.etcd.client;
    const compactor = new Compactor(etcd, quietLogger(), 50);
    await compactor.pass();
    const rev = Number((await etcd.put('/shoal/v1/tasks/u').value('1').exec()).header.revision);
    await etcd.kv.compact({ revision: String(rev) });
    await sleep(60);
    await expect(compactor.pass()).resolves.toBeGreaterThan(Date.now());
  });
});
