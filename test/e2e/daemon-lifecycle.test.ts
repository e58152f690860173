import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { freePort } from '../helpers/ports';
import { apiOf, runningOf, waitFor } from './observe';
import { useE2eNode } from './use-node';
import { IDLE } from '../helpers/workloads';

const node = useE2eNode();
const DAEMON = path.join(__dirname, '../../dist/src/daemon/main.js');

const alive = (pid: number) => fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
const readPid = (file: string) => Number(fs.readFileSync(file, 'utf8').trim());
const etcdPidFile = () => path.join(node.dataDir, 'etcd', 'etcd.pid');

/** Each running task's id and its container's pid, which must still be that task's process. */
function containers(tasks: Task__Output[]): [string, number][] {
  return tasks.map((t) => [t.id, t.status!.container!.pid] as [string, number]).sort();
}

/** The containers are the same processes as before: alive, and in their task's cgroup. */
function expectStillRunning(before: [string, number][]): void {
  for (const [id, pid] of before) {
    expect(alive(pid), `container ${id} (pid ${pid})`).toBe(true);
    expect(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8')).toContain(`/${node.cgroupParent}/${id}`);
  }
  expect(node.containerIds()).toEqual(expect.arrayContaining(before.map(([id]) => id)));
}

async function twoReplicas(name: string): Promise<[string, number][]> {
  node.ok('service', 'create', '--name', name, '--replicas', '2', 'shoal-test:latest', ...IDLE);
  const tasks = await runningOf(node, name);
  expect(tasks).toHaveLength(2);
  return containers(tasks);
}

describe('shoald lifecycle', () => {
  it('a second shoald on the same data directory is refused by the pid file and touches nothing', async () => {
    const first = readPid(path.join(node.dataDir, 'shoald.pid'));
    const [client, peer, cluster] = [await freePort(), await freePort(), await freePort()];
    const second = await new Promise<{ code: number; out: string }>((resolve) =>
      execFile(
        process.execPath,
        [DAEMON, `--data-dir=${node.dataDir}`, `--socket=${node.socket}`, `--etcd-client-port=${client}`, `--etcd-peer-port=${peer}`, `--listen-addr=127.0.0.1:${cluster}`, `--cgroup-parent=${node.cgroupParent}`, `--runc-root=${node.runcRoot}`],
        { timeout: 60_000 },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, out: stdout + stderr }),
      ),
    );
    expect(second.code).toBe(1);
    const fatal = second.out.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.level === 60);
    expect(fatal.msg).toBe(`shoald could not start: another shoald (pid ${first}) is already running with this data directory`);
    // The first one still owns the pid file and answers on its socket.
    expect(readPid(path.join(node.dataDir, 'shoald.pid'))).toBe(first);
    expect((await apiOf(node).info()).leader).toBe(true);
  });

  it('SIGTERM stops shoald and its etcd but leaves the containers running; a restarted shoald adopts them', async () => {
    const before = await twoReplicas('kept');
    const etcd = readPid(etcdPidFile());
    await node.stop('SIGTERM');
    expect(alive(etcd)).toBe(false);
    expect(fs.existsSync(node.socket)).toBe(false);
    expectStillRunning(before);
    expect(node.containerIds()).toHaveLength(2);

    await node.start();
    const after = await waitFor('the restarted shoald to report both adopted tasks running', async () => {
      const running = await runningOf(node, 'kept');
      return running.length === 2 && running;
    });
    expect(containers(after)).toEqual(before);
    // Adopted, not replaced: no task was added to the service.
    expect((await apiOf(node).listTasks({ service: 'kept' })).tasks).toHaveLength(2);
    expectStillRunning(before);
  });

  it('when its etcd member dies, the supervisor starts it again, the control API comes back and the containers keep running', async () => {
    const before = await twoReplicas('steady');
    const etcd = readPid(etcdPidFile());
    process.kill(etcd, 'SIGKILL');
    await waitFor('the etcd member to be gone', () => !alive(etcd));
    await waitFor('a new etcd member', () => fs.existsSync(etcdPidFile()) && readPid(etcdPidFile()) !== etcd && alive(readPid(etcdPidFile())));
    await waitFor('the control API to answer again', () => apiOf(node).listServices().then(() => true));
    expectStillRunning(before);

    // The cluster state survived, and changes are made again.
    expect(node.ok('service', 'ls')).toMatch(/steady\s+replicated\s+2\/2/);
    node.ok('service', 'scale', 'steady=3');
    expect(await runningOf(node, 'steady')).toHaveLength(3);
    expectStillRunning(before);
    expect(node.containerIds()).toHaveLength(3);
  });
});
