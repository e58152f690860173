/**
 * The node resolver's sockets inside a container's network namespace, where the container finds
 * it at 127.0.0.11:53, as Docker's containers find theirs.
 *
 * Why inside each namespace, and not an address on each network's bridge: the container then
 * needs no route to the node, nothing of an overlay subnet is routed in the host's namespace
 * (where it could shadow a subnet of the host's own, and where a host firewall's INPUT policy
 * would decide whether DNS works), and each socket serves exactly one container, so the answer
 * for a container is chosen by the socket it asked on, never by a source address it could forge.
 *
 * Node cannot enter a namespace itself, so a short-lived child started in it (nsenter) binds a UDP
 * socket and a TCP server on 127.0.0.11 and hands both to shoald over the IPC channel (the
 * handle passing child_process does for dgram and net), then exits; the sockets stay in the
 * namespace they were made in. They take random ports, as Docker's do, so that a container's own
 * server on port 53 is free to bind it: an nftables table in the namespace sends 127.0.0.11:53 to
 * them (conntrack rewrites the answers back to port 53).
 */
import { spawn } from 'node:child_process';
import type * as dgram from 'node:dgram';
import type * as net from 'node:net';
import { internal } from '../common/errors';
import { run } from './command';
import { DNS_PORT } from './dns-server';

export const RESOLVER_ADDRESS = '127.0.0.11';
const TABLE = 'shoal-dns';
/** nft 1.0.6 refuses the `dstnat` keyword on the output hook; -100 is its value. */
const DSTNAT = -100;
const BIND_TIMEOUT_MS = 15_000;

export interface DnsListeners {
  udp: dgram.Socket;
  tcp: net.Server;
}

/** Run by `node -e` inside the namespace: only node builtins, and out as soon as the handles are sent. */
const BINDER = `
const fail = (e) => { console.error(e.message); process.exit(1); };
process.on('disconnect', () => process.exit(1));
const udp = require('node:dgram').createSocket('udp4');
udp.on('error', fail);
udp.bind(0, '${RESOLVER_ADDRESS}', () => {
  const tcp = require('node:net').createServer();
  tcp.on('error', fail);
  tcp.listen(0, '${RESOLVER_ADDRESS}', () => process.send('udp', udp, () => process.send('tcp', tcp, () => process.exit(0))));
});
`;

/** The nft script that sends 127.0.0.11:53 to the listeners' ports, made whole in one transaction (a new shoald's replace the last's). */
function redirectRuleset(udpPort: number, tcpPort: number): string {
  return [
    `table ip ${TABLE} {}`,
    `delete table ip ${TABLE}`,
    `table ip ${TABLE} {`,
    '  chain output {',
    `    type nat hook output priority ${DSTNAT}; policy accept;`,
    `    ip daddr ${RESOLVER_ADDRESS} udp dport ${DNS_PORT} dnat to ${RESOLVER_ADDRESS}:${udpPort}`,
    `    ip daddr ${RESOLVER_ADDRESS} tcp dport ${DNS_PORT} dnat to ${RESOLVER_ADDRESS}:${tcpPort}`,
    '  }',
    '}',
  ].join('\n') + '\n';
}

/** Binds the listeners in the namespace (its loopback must be up) and points 127.0.0.11:53 at them. */
export async function openDnsListeners(netns: string): Promise<DnsListeners> {
  const listeners = await bindIn(netns);
  try {
    await run('nft', ['-f', '-'], { netns, input: redirectRuleset((listeners.udp.address() as net.AddressInfo).port, (listeners.tcp.address() as net.AddressInfo).port) });
    return listeners;
  } catch (err) {
    listeners.udp.close();
    listeners.tcp.close();
    throw err;
  }
}

function bindIn(netns: string): Promise<DnsListeners> {
  const child = spawn('nsenter', [`--net=${netns}`, process.execPath, '-e', BINDER], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const got: Partial<DnsListeners> = {};
  let settled = false;
  return new Promise<DnsListeners>((resolve, reject) => {
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      got.udp?.close();
      got.tcp?.close();
      reject(internal(`binding the resolver in ${netns} failed: ${why}`));
    };
    const timer = setTimeout(() => fail(`no sockets within ${BIND_TIMEOUT_MS} ms`), BIND_TIMEOUT_MS);
    child.on('message', (m: unknown, handle: unknown) => {
      if (settled) return void (handle as { close?: () => void } | undefined)?.close?.();
      if (m === 'udp') got.udp = handle as dgram.Socket;
      if (m === 'tcp') got.tcp = handle as net.Server;
      if (!got.udp || !got.tcp) return;
      settled = true;
      clearTimeout(timer);
      resolve({ udp: got.udp, tcp: got.tcp });
    });
    child.on('error', (err) => fail(err.message));
    // A clean exit may be seen before the handles it sent: they are awaited (within the timeout).
    child.on('close', (code) => code !== 0 && fail(stderr.trim() || `the binder exited with ${code}`));
  });
}
