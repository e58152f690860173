import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll } from 'vitest';
import { Store } from '../../src/manager/store/store';
import { freePort } from './ports';

/** A throwaway single-member etcd for one test file, with a client; stop() removes everything. */
export interface TestEtcd {
  url: string;
  client: Etcd3;
  stop(): Promise<void>;
}

/**
 * Starts a real etcd on free loopback ports and a fresh data dir. `flags` go to etcd as given,
 * e.g. a small --max-request-bytes so a test can reach etcd's size limit with small objects.
 */
export async function startEtcd(flags: string[] = []): Promise<TestEtcd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-etcd-'));
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const log = fs.openSync(path.join(dir, 'etcd.log'), 'a');
  const proc: ChildProcess = spawn(
    'etcd',
    [
      '--name=test',
      `--data-dir=${path.join(dir, 'data')}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=test=${peer}`,
      '--log-level=warn',
      '--logger=zap',
      ...flags,
    ],
    { stdio: ['ignore', log, log] },
  );
  fs.closeSync(log);
  // Probed with a client of its own, so the test's client never sees the refused connections of start-up.
  const probe = new Etcd3({ hosts: url, dialTimeout: 1000 });
  let client: Etcd3 | undefined;
  const stop = async () => {
    probe.close();
    client?.close();
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await probe.get('/health').exec();
      probe.close();
      client = new Etcd3({ hosts: url });
      return { url, client, stop };
    } catch (err) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        const out = fs.readFileSync(path.join(dir, 'etcd.log'), 'utf8');
        await stop();
        throw new Error(`etcd did not start: ${(err as Error).message}\n${out}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** A real etcd and a Store on it for the enclosing file or describe block, stopped after it. */
export function useEtcdStore(): { readonly etcd: TestEtcd; readonly store: Store } {
  const ctx = {} as { etcd: TestEtcd; store: Store };
  beforeAll(async () => {
    ctx.etcd = await startEtcd();
    ctx.store = new Store(ctx.etcd.client);
  });
  afterAll(async () => {
    await ctx.etcd?.stop();
  });
  return ctx;
}
