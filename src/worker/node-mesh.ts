import type { NodeNetworks__Output } from '../gen/shoal/v1/NodeNetworks';
import type { MeshPort, MeshState } from '../network/mesh';
import { bridgeName, macForIp, type WantedNetwork } from '../network/overlay';

const bare = (address: string) => address.split('/')[0];
const prefixLength = (subnet: string) => subnet.split('/')[1];

/**
 * The networks a node carries: those of its containers, and the ingress network whenever the
 * dispatcher gave the node its address there. Each bridge holds the network's gateway (every
 * node the same: a container's default route leaves by its own node, and the VXLAN devices, which
 * answer ARP from their static entries only, never carry the question elsewhere), but the ingress
 * bridge holds the node's own address, with the MAC its peers derive from it. Pure.
 */
export function wantedNetworks(state: NodeNetworks__Output, containerNetworks: Set<string>): WantedNetwork[] {
  const ingress = state.ingress;
  return state.networks
    .filter((n) => containerNetworks.has(n.id) || n.id === ingress?.network_id)
    .map((n) => ({
      vni: n.vni,
      peers: state.peers.filter((p) => p.network_id === n.id).map((p) => ({ ip: p.ip, mac: macForIp(p.ip), vtep: p.node_addr })),
      ...(n.id === ingress?.network_id
        ? { address: ingress.address, mac: macForIp(ingress.address) }
        : { address: `${n.gateway}/${prefixLength(n.subnet)}` }),
    }));
}

/** Where a container's default route goes: its first network's gateway, or this node's own ingress address. */
export function gatewayOf(state: NodeNetworks__Output, networkId: string): string | undefined {
  if (networkId === state.ingress?.network_id) return bare(state.ingress.address);
  return state.networks.find((n) => n.id === networkId)?.gateway || undefined;
}

/**
 * The node's own table for this state: the published ports (a port published twice, which the
 * scheduler and the manager's checks keep from happening, goes to the first), with endpoints not
 * among this node's containers masqueraded, the subnets it carries and its bridges. Pure.
 */
export function meshState(state: NodeNetworks__Output, carried: WantedNetwork[], prefix: string): MeshState {
  const local = new Set(state.attachments.flatMap((a) => a.networks.map((n) => bare(n.address))));
  const ports = new Map<string, MeshPort>();
  for (const p of state.published) {
    const key = `${p.protocol}/${p.published_port}`;
    if (ports.has(key) || (p.protocol !== 'tcp' && p.protocol !== 'udp')) continue;
    const endpoints = p.endpoints.map((ip) => ({ ip, port: p.target_port, remote: !local.has(ip) }));
    ports.set(key, { protocol: p.protocol, port: p.published_port, endpoints });
  }
  const vnis = new Set(carried.map((n) => n.vni));
  return {
    ports: [...ports.values()],
    subnets: state.networks.filter((n) => vnis.has(n.vni)).map((n) => n.subnet),
    bridges: carried.map((n) => bridgeName(prefix, n.vni)),
    bridgePrefix: `${prefix}b`,
  };
}
