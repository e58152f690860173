/**
 * Takes shoal off this node: stops shoald and its etcd member, removes every container with its
 * mounts and cgroups, and deletes the data and runtime directories. For operators retiring a node
 * and for deploy/teardown.sh; it does not ask, so only run it when that is what you want.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../common/logger';
import { ContainerNetworks } from '../worker/container-networks';
import { Runtime } from '../worker/runtime/runtime';
import { DEFAULTS, paths, type DaemonConfig } from './config';

const { values } = parseArgs({
  options: {
    'data-dir': { type: 'string', default: DEFAULTS.dataDir },
    socket: { type: 'string', default: DEFAULTS.socket },
    'cgroup-parent': { type: 'string', default: DEFAULTS.cgroupParent },
    'runc-root': { type: 'string', default: DEFAULTS.runcRoot },
    'overlay-prefix': { type: 'string', default: DEFAULTS.overlayPrefix },
  },
});

const config: DaemonConfig = {
  dataDir: values['data-dir']!,
  socket: values.socket!,
  listenAddr: DEFAULTS.listenAddr,
  cgroupParent: values['cgroup-parent']!,
  runcRoot: values['runc-root']!,
  etcdClientPort: DEFAULTS.etcdClientPort,
  etcdPeerPort: DEFAULTS.etcdPeerPort,
  startConcurrency: 1,
};
const log = createLogger('warn');

async function stopPid(file: string, mustContain: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(file, 'utf8').trim());
    if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(mustContain)) return;
  } catch {
    return;
  }
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100; i++) {
    if (!fs.existsSync(`/proc/${pid}`)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  process.kill(pid, 'SIGKILL');
}

async function main(): Promise<void> {
  const p = paths(config);
  await stopPid(p.pidFile, 'shoald');
  await stopPid(path.join(p.etcd, 'etcd.pid'), 'etcd');
  const runtime = new Runtime({ root: p.containers, runcRoot: config.runcRoot, cgroupParent: config.cgroupParent, log });
  await runtime.removeAll();
  runtime.close();
  await new ContainerNetworks({ dir: p.netns, prefix: values['overlay-prefix']!, log }).removeAll();
  for (const dir of [config.dataDir, config.runcRoot, config.socket]) fs.rmSync(dir, { recursive: true, force: true });
  // The socket's directory (/run/shoal) goes too, unless something else lives there.
  try {
    fs.rmdirSync(path.dirname(config.socket));
  } catch {
    // Not empty, or already gone.
  }
  process.stdout.write(`shoal removed from this node (${config.dataDir})\n`);
}

main().catch((err) => {
  process.stderr.write(`teardown failed: ${(err as Error).message}\n`);
  process.exit(1);
});
