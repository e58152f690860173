import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRootCA, issueKeyPair } from '../../src/ca/certificates';
import { connectEtcd } from '../../src/manager/etcd/client';
import { EtcdSupervisor } from '../../src/manager/etcd/supervisor';
import { etcdTlsFiles, writeEtcdTls } from '../../src/manager/manager-role';
import { fillDisk } from '../helpers/disk';
import { freePort } from '../helpers/ports';

interface Entry {
  level: number;
  msg: string;
  failures?: number;
  retryInMs?: number;
}

async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('etcd supervisor on a full data disk (real etcd, a small tmpfs)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-etcd-full-'));
  const log: Entry[] = [];
  let supervisor: EtcdSupervisor;
  let mounted = false;

  beforeAll(async () => {
    // etcd preallocates a 64 MiB write-ahead log
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256m', 'shoal-test-etcd-full', dir]);
    mounted = true;
    const logger = pino({ level: 'info' }, { write: (line: string) => void log.push(JSON.parse(line) as Entry) });
    const ca = await createRootCA('shoal test etcd CA');
    writeEtcdTls(dir, { caPem: ca.certPem, ...(await issueKeyPair(ca, { nodeId: 'n1', role: 'manager', clusterId: 'c1' }, { ips: ['127.0.0.1'], server: true, client: true })) });
    supervisor = new EtcdSupervisor({
      dataDir: dir,
      name: 'n1',
      advertiseHost: '127.0.0.1',
      tls: etcdTlsFiles(dir),
      clientPort: await freePort(),
      peerPort: await freePort(),
      log: logger,
      backoff: { initialMs: 200, maxMs: 800 },
    });
    await supervisor.start();
  });

  afterAll(async () => {
    try {
      await supervisor?.stop();
    } finally {
      if (mounted) execFileSync('umount', [dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps restarting a dead member, backing off, until there is space again', async () => {
    const client = connectEtcd(supervisor.clientUrl, etcdTlsFiles(dir), { dialTimeoutMs: 1000 });
    try {
      await client.put('before').value('1');
      // full to the last page, with no pid file left to overwrite in place
      fillDisk(dir, 'filler-1');
      const pidFile = path.join(dir, 'etcd.pid');
      const pid = Number(fs.readFileSync(pidFile, 'utf8'));
      fs.rmSync(pidFile);
      fillDisk(dir, 'filler-2');
      process.kill(pid, 'SIGKILL');

      const failures = () => log.filter((e) => e.failures !== undefined && e.retryInMs !== undefined);
      await until('four failed restarts', () => failures().length >= 4);
      const f = failures();
      expect(f.slice(0, 4).map((e) => e.retryInMs)).toEqual([200, 400, 800, 800]);
      expect(f[0].msg).toMatch(/^restarting etcd failed \(1 in a row\): the data disk of node .+ is full: .+; trying again in 0\.2 s$/);
      expect(await supervisor.explain('the cluster store (etcd) is unavailable: 14 UNAVAILABLE: No connection established')).toMatchObject({
        message: expect.stringMatching(/^the data disk of node .+ is full: /),
      });
      // no member runs that no pid file names
      expect(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })).not.toContain(`--data-dir=${path.join(dir, 'member-data')}`);

      fs.rmSync(path.join(dir, 'filler-1'));
      fs.rmSync(path.join(dir, 'filler-2'));
      await until('etcd to answer again', () => client.get('before').string().then((v) => v === '1', () => false));
      await until('the recovery to be logged', () => log.some((e) => /^etcd member is back after \d+ failed restart\(s\)$/.test(e.msg)));
      expect(await supervisor.explain('14 UNAVAILABLE: No connection established')).toBeUndefined();
    } finally {
      client.close();
    }
  });
});
