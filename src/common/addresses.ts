import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as os from 'node:os';
import { invalidArgument } from './errors';

/** Swarm's cluster port: joins, the dispatcher, manager-to-manager calls and remote CLIs. */
export const CLUSTER_PORT = 2377;

export interface HostPort {
  host: string;
  port: number;
}

/** Parses `HOST[:PORT]` (IPv6 in brackets); `what` names the flag or field in the error. */
export function parseHostPort(text: string, what: string, defaultPort = CLUSTER_PORT): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m) throw invalidArgument(`${what}: "${text}" is not HOST[:PORT]`);
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  if (port < 1 || port > 65535) throw invalidArgument(`${what}: port ${port} is not 1-65535`);
  return { host: m[1] ?? m[2], port };
}

export const formatHostPort = ({ host, port }: HostPort): string => (net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`);

/** IPv4 and IPv6 addresses of this host's (or this network namespace's) interfaces. */
export function localAddresses(): string[] {
  return Object.values(os.networkInterfaces())
    .flat()
    .filter((a): a is os.NetworkInterfaceInfo => !!a)
    .map((a) => a.address);
}

/** Refuses an advertise address that no interface of this host holds: other nodes could never reach it. */
export function checkAdvertiseAddr(addr: string): void {
  if (!net.isIP(addr)) throw invalidArgument(`advertise address "${addr}" is not an IP address`);
  if (!localAddresses().includes(addr)) {
    throw invalidArgument(`advertise address ${addr} is not an address of this host (it has ${localAddresses().join(', ')})`);
  }
}

/**
 * The local address the kernel would use to reach `remote`: what a joining node advertises when
 * told nothing. A connected UDP socket sends no packet, it only asks the routing table.
 */
export function sourceAddressFor(remote: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(net.isIPv6(remote) ? 'udp6' : 'udp4');
    sock.once('error', (err) => {
      sock.close();
      reject(invalidArgument(`no route to ${remote}: ${err.message}`));
    });
    sock.connect(9, remote, () => {
      const { address } = sock.address();
      sock.close();
      resolve(address);
    });
  });
}

/** With nothing given: a specific listen address, else the address this host uses for its default route. */
export async function defaultAdvertiseAddr(listenHost: string): Promise<string> {
  if (listenHost !== '0.0.0.0' && listenHost !== '::') return listenHost;
  try {
    return await sourceAddressFor('192.0.2.1');
  } catch {
    const first = localAddresses().find((a) => net.isIPv4(a) && a !== '127.0.0.1');
    if (!first) throw invalidArgument('this host has no address to advertise: pass --advertise-addr');
    return first;
  }
}
