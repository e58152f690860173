/**
 * Many worker nodes in one process, for bench/scale.ts (which forks this with IPC): each joins the
 * cluster through the real join flow (CA fetched and checked against the token, a key and CSR of
 * its own, a certificate from the node CA) and runs the real worker Agent, holding its own TLS
 * dispatcher session; only the executor is simulated (SimExecutor: no containers). Node i prefers
 * manager i mod 3, so sessions spread over the managers as real workers' would.
 *
 *   node dist/bench/sim-workers.js --token SWMTKN-... --managers 10.0.0.2:2377,... --nodes 1000 --addr 10.0.0.1
 *
 * Tells its parent {type:'joined', nodes} as nodes join, then {type:'ready'}; answers a 'stats'
 * message with {type:'stats', rss, running}. Stops every agent and exits on SIGTERM, SIGINT, or
 * when its parent goes away.
 */
import * as os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { parseArgs } from 'node:util';
import { clientCredentials } from '../src/ca/tls';
import type { ShoalError } from '../src/common/errors';
import { quietLogger } from '../src/common/logger';
import { VERSION } from '../src/common/version';
import { joinCluster } from '../src/daemon/join';
import { Agent } from '../src/worker/agent';
import { SimExecutor } from './sim-executor';

const { values } = parseArgs({
  options: {
    token: { type: 'string' },
    managers: { type: 'string' },
    nodes: { type: 'string', default: '50' },
    addr: { type: 'string', default: '127.0.0.1' },
    'join-concurrency': { type: 'string', default: '4' },
    'cpus-per-node': { type: 'string', default: '4' },
  },
});
const managers = values.managers!.split(',');
const NODES = Number(values.nodes);
const log = quietLogger();
const JOIN_ATTEMPTS = 10;
const agents: Agent[] = [];
const executors: SimExecutor[] = [];
let stopping = false;

const send = (msg: object) => process.send?.(msg);

/** A join that finds the manager too busy to answer in time is tried again, as an operator would. */
async function joinWithRetries(opts: Parameters<typeof joinCluster>[0]): Promise<Awaited<ReturnType<typeof joinCluster>>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await joinCluster(opts);
    } catch (err) {
      if (attempt >= JOIN_ATTEMPTS || (err as ShoalError).code !== grpc.status.UNAVAILABLE) throw err;
      log.warn({ err: (err as Error).message, attempt }, 'join failed; trying again');
      await new Promise((r) => setTimeout(r, 1000 * attempt));
    }
  }
}

async function joinOne(i: number): Promise<void> {
  const hostname = `sim-${String(i).padStart(5, '0')}`;
  const description = {
    hostname,
    platform: { os: 'linux', architecture: 'amd64' },
    resources: { nano_cpus: Number(values['cpus-per-node']) * 1e9, memory_bytes: 8 * 2 ** 30, pids: 0 },
    engine_version: VERSION,
  };
  const prefer = managers[i % managers.length];
  const joined = await joinWithRetries({ token: values.token!, remote: prefer, advertise: `${values.addr}:${10000 + i}`, description });
  // One TLS context per node for all its reconnects: making one costs the simulator's only thread
  // a few milliseconds, which a thousand nodes reconnecting at once turn into handshake timeouts.
  const credentials = clientCredentials(joined.certs);
  // The join's list, rotated so that this node asks its preferred manager first.
  const list = joined.managers.includes(prefer) ? [prefer, ...joined.managers.filter((m) => m !== prefer)] : joined.managers;
  let agent: Agent | undefined;
  const executor = new SimExecutor((id, status) => agent?.report(id, status));
  agent = new Agent({
    managers: list,
    credentials: () => credentials,
    description,
    executor,
    onManagers: () => undefined,
    onDesiredRole: () => undefined,
    onRemoved: () => log.warn({ hostname }, 'simulated node was removed'),
    log: log.child({ node: hostname }),
  });
  agents.push(agent);
  executors.push(executor);
  if (!stopping) agent.start();
}

async function main(): Promise<void> {
  let next = 0;
  let joined = 0;
  const worker = async () => {
    while (next < NODES && !stopping) {
      const i = next++;
      await joinOne(i);
      if (++joined % 50 === 0 || joined === NODES) send({ type: 'joined', nodes: joined });
    }
  };
  await Promise.all(Array.from({ length: Number(values['join-concurrency']) }, worker));
  send({ type: 'ready' });
}

function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  for (const a of agents) a.stop();
  // The sessions' cancels go out on the next turns of the loop.
  setTimeout(() => process.exit(code), 500).unref();
}

process.on('message', (msg: { type: string }) => {
  if (msg.type === 'stats') {
    send({ type: 'stats', rss: process.memoryUsage().rss, running: executors.reduce((n, e) => n + e.running, 0), load: os.loadavg()[0] });
  }
});
process.on('disconnect', () => stop(0));
process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));

main().catch((err) => {
  send({ type: 'error', message: (err as Error).stack ?? String(err) });
  stop(1);
});
