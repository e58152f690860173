/**
 * IPAM: subnets and VNIs for overlay networks, and addresses on them for task attachments and
 * service VIPs. Pure bookkeeping in memory, no I/O: the leader rebuilds it from the stored
 * networks, tasks and services (the restore* methods), then asks it for new allocations and stores
 * them with a CAS; a failed write is undone with the matching release.
 */
import { alreadyExists, failedPrecondition, invalidArgument, notFound, resourceExhausted } from '../common/errors';

/** Where networks without a --subnet get theirs: /24s carved out of 10.0.0.0/8. */
export const DEFAULT_POOL = '10.0.0.0/8';
export const DEFAULT_POOL_PREFIX = 24;
/** VNIs below 4096 are left to whatever else on the hosts uses VXLAN (VLAN-sized ids), as libnetwork does. */
export const FIRST_VNI = 4096;
export const LAST_VNI = 0xffffff;
/** A /30 is the smallest subnet with an address left after the network, gateway and broadcast. */
const SMALLEST_PREFIX = 30;

interface Range {
  /** First address (the network address), as an unsigned 32-bit number. */
  base: number;
  prefix: number;
}

export interface NetworkAllocation {
  /** Canonical CIDR, e.g. "10.0.3.0/24". */
  subnet: string;
  /** The first usable address, never handed to a task or VIP. */
  gateway: string;
  vni: number;
}

export interface IpamOptions {
  /** CIDR the default subnets are carved from (DEFAULT_POOL). */
  pool?: string;
  /** Prefix length of each default subnet (DEFAULT_POOL_PREFIX). */
  poolPrefix?: number;
  /** CIDRs never handed out from the pool, e.g. the hosts' own network. A user's subnet may still overlap them. */
  reserved?: string[];
}

interface NetworkState {
  range: Range;
  vni: number;
  /** Offsets into the subnet that are taken (network, gateway and broadcast included). */
  used: Set<number>;
  /** The offset handed out last: allocation goes on from there, so a released address is reused last. */
  cursor: number;
}

const size = (r: Range) => 2 ** (32 - r.prefix);
const last = (r: Range) => r.base + size(r) - 1;
const overlaps = (a: Range, b: Range) => a.base <= last(b) && b.base <= last(a);

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const formatRange = (r: Range) => `${formatIp(r.base)}/${r.prefix}`;

export function parseIp(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const octets = m.slice(1).map(Number);
  if (octets.some((o, i) => o > 255 || (m[i + 1].length > 1 && m[i + 1].startsWith('0')))) return undefined;
  return ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
}

/** Parses "a.b.c.d/n" whose host bits are zero; `field` names the input in the error. */
function parseSubnet(text: string, field: string): Range {
  const [ip, prefixText, extra] = text.split('/');
  const base = parseIp(ip);
  const prefix = /^\d{1,2}$/.test(prefixText ?? '') ? Number(prefixText) : NaN;
  if (base === undefined || extra !== undefined || !(prefix >= 0 && prefix <= 32)) {
    throw invalidArgument(`${field} "${text}" is not an IPv4 CIDR such as 10.20.0.0/24`);
  }
  const range = { base, prefix };
  const network = prefix === 0 ? 0 : (base & ~(size(range) - 1)) >>> 0;
  if (network !== base) {
    throw invalidArgument(`${field} "${text}" has host bits set; the network is ${formatIp(network)}/${prefix}`);
  }
  return range;
}

/** Splits "10.0.1.5/24" into the address and prefix, refusing anything else. */
function parseAddress(text: string): { ip: number; prefix: number } {
  const [ipText, prefixText, extra] = text.split('/');
  const ip = parseIp(ipText);
  if (ip === undefined || extra !== undefined || !/^\d{1,2}$/.test(prefixText ?? '')) {
    throw invalidArgument(`address "${text}" is not an IPv4 address with a prefix such as 10.20.0.5/24`);
  }
  return { ip, prefix: Number(prefixText) };
}

function parseNetworkSubnet(text: string, field: string): Range {
  const range = parseSubnet(text, field);
  if (range.prefix > SMALLEST_PREFIX) {
    throw invalidArgument(`${field} "${text}" is too small: a network needs a /${SMALLEST_PREFIX} or larger`);
  }
  return range;
}

/** Checks a user's subnet for form and size, without allocating it; returns it in canonical form. */
export const validateSubnet = (text: string, field = 'subnet'): string => formatRange(parseNetworkSubnet(text, field));

export class Ipam {
  private readonly pool: Range;
  private readonly poolPrefix: number;
  private readonly reserved: Range[];
  private readonly networks = new Map<string, NetworkState>();

  constructor(opts: IpamOptions = {}) {
    this.pool = parseSubnet(opts.pool ?? DEFAULT_POOL, 'pool');
    this.poolPrefix = opts.poolPrefix ?? DEFAULT_POOL_PREFIX;
    if (this.poolPrefix < this.pool.prefix || this.poolPrefix > SMALLEST_PREFIX) {
      throw invalidArgument(`pool prefix /${this.poolPrefix} must lie between the pool's /${this.pool.prefix} and /${SMALLEST_PREFIX}`);
    }
    this.reserved = (opts.reserved ?? []).map((r) => parseSubnet(r, 'reserved'));
  }

  /**
   * A subnet (the requested one, or the first free one of the pool), its gateway and a VNI for a
   * new network. Refuses a malformed or overlapping subnet, naming the network it overlaps.
   */
  allocateNetwork(id: string, requestedSubnet?: string): NetworkAllocation {
    if (this.networks.has(id)) throw alreadyExists(`network ${id} already has an allocation`);
    const range = requestedSubnet ? this.requested(requestedSubnet) : this.fromPool();
    return this.add(id, range, this.freeVni());
  }

  /** Takes back a network allocated earlier (read from the store), with the same subnet and VNI. */
  restoreNetwork(id: string, subnet: string, vni: number): NetworkAllocation {
    if (this.networks.has(id)) throw alreadyExists(`network ${id} already has an allocation`);
    const range = this.requested(subnet);
    if (!Number.isInteger(vni) || vni < FIRST_VNI || vni > LAST_VNI) {
      throw invalidArgument(`vni ${vni} of network ${id} is outside ${FIRST_VNI}–${LAST_VNI}`);
    }
    const holder = [...this.networks].find(([, n]) => n.vni === vni);
    if (holder) throw alreadyExists(`vni ${vni} of network ${id} is already held by network ${holder[0]}`);
    return this.add(id, range, vni);
  }

  /** Frees a network's subnet, VNI and every address on it. */
  releaseNetwork(id: string): void {
    this.networks.delete(id);
  }

  /** A free address on the network for a task attachment or a service VIP, e.g. "10.0.3.7/24". */
  allocateAddress(networkId: string): string {
    const n = this.network(networkId);
    const count = size(n.range);
    for (let step = 1; step < count; step++) {
      const offset = (n.cursor + step) % count;
      if (!n.used.has(offset)) {
        n.used.add(offset);
        n.cursor = offset;
        return `${formatIp(n.range.base + offset)}/${n.range.prefix}`;
      }
    }
    throw resourceExhausted(`network ${networkId} (${formatRange(n.range)}) has no free address left`);
  }

  /** Marks an address allocated earlier (read from the store) as taken. */
  restoreAddress(networkId: string, address: string): void {
    const n = this.network(networkId);
    const offset = this.offset(networkId, n, address);
    if (n.used.has(offset)) throw alreadyExists(`address ${address} on network ${networkId} is already in use`);
    n.used.add(offset);
  }

  /**
   * Goes on handing out addresses after this one (the newest holder's, read from the store), so
   * that an address given back is taken again last even by an IPAM made afresh from the store:
   * a task's address taken at once by another would meet what still points at the first one
   * (a neighbour or forwarding entry not yet replaced, a namespace not yet removed).
   */
  resumeAfter(networkId: string, address: string): void {
    const n = this.network(networkId);
    n.cursor = this.offset(networkId, n, address);
  }

  /** Returns an address to the network; releasing one that is free (or whose network is gone) is a no-op. */
  releaseAddress(networkId: string, address: string): void {
    const n = this.networks.get(networkId);
    if (!n) return;
    n.used.delete(this.offset(networkId, n, address));
  }

  private add(id: string, range: Range, vni: number): NetworkAllocation {
    const count = size(range);
    // The network address, the gateway and the broadcast address are never handed out.
    this.networks.set(id, { range, vni, used: new Set([0, 1, count - 1]), cursor: 1 });
    return { subnet: formatRange(range), gateway: formatIp(range.base + 1), vni };
  }

  private requested(text: string): Range {
    const range = parseNetworkSubnet(text, 'subnet');
    for (const [other, n] of this.networks) {
      if (overlaps(range, n.range)) {
        throw failedPrecondition(`subnet ${formatRange(range)} overlaps ${formatRange(n.range)} of network ${other}`);
      }
    }
    return range;
  }

  /** The lowest pool subnet that overlaps no network and no reserved range. */
  private fromPool(): Range {
    const taken = [...[...this.networks.values()].map((n) => n.range), ...this.reserved];
    const step = 2 ** (32 - this.poolPrefix);
    for (let base = this.pool.base; base + step - 1 <= last(this.pool); ) {
      const candidate = { base, prefix: this.poolPrefix };
      const clash = taken.filter((t) => overlaps(candidate, t));
      if (clash.length === 0) return candidate;
      // Skip past everything that clashes, staying aligned to the pool prefix.
      const end = Math.max(...clash.map(last));
      base = Math.ceil((end + 1 - this.pool.base) / step) * step + this.pool.base;
    }
    throw resourceExhausted(`the address pool ${formatRange(this.pool)} has no free /${this.poolPrefix} left; give the network a --subnet`);
  }

  private freeVni(): number {
    const held = new Set([...this.networks.values()].map((n) => n.vni));
    for (let vni = FIRST_VNI; vni <= LAST_VNI; vni++) if (!held.has(vni)) return vni;
    throw resourceExhausted(`every VNI from ${FIRST_VNI} to ${LAST_VNI} is in use`);
  }

  private network(id: string): NetworkState {
    const n = this.networks.get(id);
    if (!n) throw notFound(`network ${id} has no allocation`);
    return n;
  }

  private offset(networkId: string, n: NetworkState, address: string): number {
    const { ip, prefix } = parseAddress(address);
    const offset = ip - n.range.base;
    if (prefix !== n.range.prefix || offset < 0 || offset >= size(n.range)) {
      throw invalidArgument(`address ${address} is not in network ${networkId}'s subnet ${formatRange(n.range)}`);
    }
    if (offset === 0 || offset === 1 || offset === size(n.range) - 1) {
      throw invalidArgument(`address ${address} is the network, gateway or broadcast address of network ${networkId}`);
    }
    return offset;
  }
}
