/**
 * The overlay's kernel state on one node: per network a bridge and a VXLAN device in it, and per
 * remote container a permanent neighbour entry (IP → MAC) and FDB entry (MAC → its node's VTEP),
 * so nothing is learned by flooding (libnetwork programs the same two entries). Containers plug
 * into the bridge with a veth.
 *
 * applyOverlay is level-triggered: it reads what exists (`ip -json`, `bridge -json`), plans the
 * difference with the pure planOverlay, and runs the plan as one `ip -batch -` and one
 * `bridge -batch -`. Every device it makes is named from the node's prefix, which is how it tells
 * its own devices from everyone else's and how removeOverlay finds them all.
 */
import { invalidArgument } from '../common/errors';
import { run, runJson } from './command';

export const VXLAN_PORT = 4789;
/** 1500 less VXLAN's 50 bytes of outer headers. */
export const OVERLAY_MTU = 1450;

export interface OverlayHost {
  /** Starts the name of every device made here: 1–5 lowercase letters or digits, a letter first. */
  prefix: string;
  /** The network namespace that plays the node (default: the caller's). */
  netns?: string;
  /** This node's underlay address, the source of its VXLAN packets (default: the kernel's choice). */
  vtep?: string;
}

/** A container on another node, reached over VXLAN. */
export interface Peer {
  ip: string;
  mac: string;
  /** The underlay address of the node it runs on. */
  vtep: string;
}

/** A network this node must carry, and every remote container on it. */
export interface WantedNetwork {
  vni: number;
  peers: Peer[];
  /**
   * The bridge's own address, with the prefix: the network's gateway, the same on every node, so
   * each container's default route leaves by its own node; or, on the ingress network, the node's
   * own address there, which remote tasks answer the routing mesh on.
   */
  address?: string;
  /** The bridge's MAC, when peers must reach its address over VXLAN (macForIp of it). */
  mac?: string;
}

export interface ObservedLink {
  ifname: string;
  mtu: number;
  flags: string[];
  /** Its MAC. */
  address?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
  master?: string;
  linkinfo?: {
    info_kind?: string;
    info_data?: { id?: number; port?: number; learning?: boolean; proxy?: boolean; local?: string };
  };
}

export interface ObservedNeighbour {
  dst: string;
  dev: string;
  lladdr?: string;
  state?: string[];
}

export interface ObservedFdb {
  mac: string;
  ifname: string;
  dst?: string;
  flags?: string[];
}

/** What exists on the node, as `ip -json` and `bridge -json` print it (only shoal's devices matter). */
export interface ObservedOverlay {
  links: ObservedLink[];
  neighbours: ObservedNeighbour[];
  fdb: ObservedFdb[];
}

/** Lines for `ip -batch -` and `bridge -batch -`; both empty when the node is as wanted. */
export interface OverlayPlan {
  ip: string[];
  bridge: string[];
}

export interface Attachment {
  vni: number;
  /** The container's network namespace. */
  netns: string;
  /** Its address with the network's prefix, e.g. "10.0.3.7/24". */
  address: string;
  mac: string;
  /** Its interface name inside the container (default eth0). */
  ifname?: string;
  /** The container's default route goes by this interface to this address (its node's bridge). */
  gateway?: string;
}

const PREFIX = /^[a-z][a-z0-9]{0,4}$/;

export function checkPrefix(prefix: string): void {
  if (!PREFIX.test(prefix)) throw invalidArgument(`overlay prefix "${prefix}" must be 1–5 lowercase letters or digits, starting with a letter`);
}

export const bridgeName = (prefix: string, vni: number) => `${prefix}b${vni}`;
export const vxlanName = (prefix: string, vni: number) => `${prefix}v${vni}`;

const hex = (ip: string) =>
  ip
    .split('.')
    .map((o) => Number(o).toString(16).padStart(2, '0'))
    .join('');
const bareIp = (address: string) => address.split('/')[0];

/** A container's host-side veth, named from its IP (unique in the cluster, since subnets never overlap). */
export const vethName = (prefix: string, address: string) => `${prefix}e${hex(bareIp(address))}`;

/** A locally administered MAC made from the IP, as Docker does, so MACs never need storing. */
export function macForIp(address: string): string {
  return `02:42:${hex(bareIp(address)).match(/../g)!.join(':')}`;
}

type Kind = 'bridge' | 'vxlan' | 'veth';

/** Which of shoal's devices a name is, or undefined for a device that is not this prefix's. */
function ownKind(prefix: string, name: string): Kind | undefined {
  const m = new RegExp(`^${prefix}(?:(b)\\d+|(v)\\d+|(e)[0-9a-f]{8})$`).exec(name);
  if (!m) return undefined;
  return m[1] ? 'bridge' : m[2] ? 'vxlan' : 'veth';
}

const isUp = (l: ObservedLink) => l.flags.includes('UP');

function vxlanMatches(l: ObservedLink, vni: number, vtep: string | undefined): boolean {
  const d = l.linkinfo?.info_data;
  return (
    l.linkinfo?.info_kind === 'vxlan' &&
    d?.id === vni &&
    d.port === VXLAN_PORT &&
    d.learning === false &&
    d.proxy === true &&
    (d.local ?? undefined) === vtep
  );
}

/**
 * The commands that turn `observed` into `wanted` on a node: devices of networks no longer
 * wanted (and the veths in them) go, missing or misconfigured devices are (re)made, and the
 * neighbour and FDB entries of the VXLAN devices become exactly the wanted peers.
 */
export function planOverlay(host: OverlayHost, wanted: WantedNetwork[], observed: ObservedOverlay): OverlayPlan {
  checkPrefix(host.prefix);
  const { prefix, vtep } = host;
  const own = observed.links.filter((l) => ownKind(prefix, l.ifname));
  const byName = new Map(own.map((l) => [l.ifname, l]));
  const wantedBridges = new Set(wanted.map((n) => bridgeName(prefix, n.vni)));
  const wantedVxlans = new Set(wanted.map((n) => vxlanName(prefix, n.vni)));
  const ip: string[] = [];
  const bridge: string[] = [];

  for (const l of own) {
    const kind = ownKind(prefix, l.ifname);
    const keep =
      kind === 'bridge' ? wantedBridges.has(l.ifname) : kind === 'vxlan' ? wantedVxlans.has(l.ifname) : !!l.master && wantedBridges.has(l.master);
    if (!keep) ip.push(`link del ${l.ifname}`);
  }

  for (const n of wanted) {
    const br = bridgeName(prefix, n.vni);
    const vx = vxlanName(prefix, n.vni);
    const oldBr = byName.get(br);
    const newBridge = oldBr?.linkinfo?.info_kind !== 'bridge';
    if (oldBr && newBridge) ip.push(`link del ${br}`);
    if (newBridge) ip.push(`link add ${br} type bridge`);
    if (newBridge || oldBr.mtu !== OVERLAY_MTU || !isUp(oldBr)) ip.push(`link set ${br} mtu ${OVERLAY_MTU} up`);
    if (n.mac && (newBridge || oldBr.address?.toLowerCase() !== n.mac.toLowerCase())) ip.push(`link set ${br} address ${n.mac}`);
    const held = newBridge ? [] : (oldBr.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
    for (const a of held) if (a !== n.address) ip.push(`addr del ${a} dev ${br}`);
    if (n.address && !held.includes(n.address)) ip.push(`addr add ${n.address} dev ${br}`);
    if (newBridge) {
      // Deleting a bridge frees its ports; put the containers back in the new one.
      for (const l of own) if (l.master === br && ownKind(prefix, l.ifname) === 'veth') ip.push(`link set ${l.ifname} master ${br}`);
    }

    const oldVx = byName.get(vx);
    const newVxlan = !oldVx || !vxlanMatches(oldVx, n.vni, vtep);
    if (oldVx && newVxlan) ip.push(`link del ${vx}`);
    if (newVxlan) {
      ip.push(`link add ${vx} type vxlan id ${n.vni} dstport ${VXLAN_PORT}${vtep ? ` local ${vtep}` : ''} nolearning proxy`);
    }
    if (newVxlan || newBridge || oldVx.mtu !== OVERLAY_MTU || oldVx.master !== br || !isUp(oldVx)) {
      ip.push(`link set ${vx} mtu ${OVERLAY_MTU} master ${br} up`);
    }

    const peersByIp = new Map(n.peers.map((p) => [p.ip, p]));
    const peersByMac = new Map(n.peers.map((p) => [p.mac.toLowerCase(), p]));
    // Only IPv4: peers are IPv4, and the kernel's own IPv6 entries are none of shoal's business.
    const neighbours = newVxlan ? [] : observed.neighbours.filter((e) => e.dev === vx && e.dst.includes('.'));
    const fdb = newVxlan ? [] : observed.fdb.filter((e) => e.ifname === vx && e.dst);
    for (const e of neighbours) if (!peersByIp.has(e.dst)) ip.push(`neigh del ${e.dst} dev ${vx}`);
    for (const p of n.peers) {
      const e = neighbours.find((x) => x.dst === p.ip);
      if (!e || e.lladdr?.toLowerCase() !== p.mac.toLowerCase() || !e.state?.includes('PERMANENT')) {
        ip.push(`neigh replace ${p.ip} lladdr ${p.mac} dev ${vx} nud permanent`);
      }
    }
    for (const e of fdb) if (peersByMac.get(e.mac)?.vtep !== e.dst) bridge.push(`fdb del ${e.mac} dev ${vx} dst ${e.dst} self`);
    for (const p of n.peers) {
      if (!fdb.some((e) => e.mac === p.mac.toLowerCase() && e.dst === p.vtep)) {
        bridge.push(`fdb replace ${p.mac} dev ${vx} dst ${p.vtep} self permanent`);
      }
    }
  }
  return { ip, bridge };
}

/** Reads shoal's devices, neighbour and FDB entries on a node. */
export async function readOverlay(host: OverlayHost): Promise<ObservedOverlay> {
  const opts = { netns: host.netns };
  const [links, neighbours, fdb] = await Promise.all([
    runJson<ObservedLink>('ip', ['-details', 'addr', 'show'], opts),
    runJson<ObservedNeighbour>('ip', ['neigh', 'show'], opts),
    runJson<ObservedFdb>('bridge', ['fdb', 'show'], opts),
  ]);
  return { links, neighbours, fdb };
}

async function runPlan(host: OverlayHost, plan: OverlayPlan): Promise<void> {
  if (plan.ip.length) await run('ip', ['-batch', '-'], { netns: host.netns, input: plan.ip.join('\n') + '\n' });
  if (plan.bridge.length) await run('bridge', ['-batch', '-'], { netns: host.netns, input: plan.bridge.join('\n') + '\n' });
}

/** Makes the node carry exactly the wanted networks and peers; returns what it had to do. */
export async function applyOverlay(host: OverlayHost, wanted: WantedNetwork[]): Promise<OverlayPlan> {
  const plan = planOverlay(host, wanted, await readOverlay(host));
  await runPlan(host, plan);
  return plan;
}

/** Removes every device this prefix made on the node: bridges, VXLAN devices and container veths. */
export async function removeOverlay(host: OverlayHost): Promise<void> {
  await applyOverlay(host, []);
}

/**
 * Plugs a container's network namespace into a network's bridge with a veth (the bridge must
 * exist: applyOverlay first). A veth left by an earlier attempt is replaced.
 */
export async function attachContainer(host: OverlayHost, a: Attachment): Promise<void> {
  checkPrefix(host.prefix);
  const veth = vethName(host.prefix, a.address);
  const ifname = a.ifname ?? 'eth0';
  const existing = await runJson<ObservedLink>('ip', ['link', 'show'], { netns: host.netns });
  const lines = existing.some((l) => l.ifname === veth) ? [`link del ${veth}`] : [];
  lines.push(
    `link add ${veth} mtu ${OVERLAY_MTU} type veth peer name ${ifname} mtu ${OVERLAY_MTU} address ${a.mac} netns ${a.netns}`,
    `link set ${veth} master ${bridgeName(host.prefix, a.vni)} up`,
  );
  await runPlan(host, { ip: lines, bridge: [] });
  const inside = [`addr replace ${a.address} dev ${ifname}`, `link set ${ifname} up`, 'link set lo up'];
  if (a.gateway) inside.push(`route replace default via ${a.gateway} dev ${ifname}`);
  await run('ip', ['-batch', '-'], { netns: a.netns, input: inside.join('\n') + '\n' });
}

/** Unplugs a container (its veth pair goes with the host side); a no-op when it is not plugged in. */
export async function detachContainer(host: OverlayHost, address: string): Promise<void> {
  checkPrefix(host.prefix);
  const veth = vethName(host.prefix, address);
  const existing = await runJson<ObservedLink>('ip', ['link', 'show'], { netns: host.netns });
  if (existing.some((l) => l.ifname === veth)) await run('ip', ['link', 'del', veth], { netns: host.netns });
}
