/**
 * A node's own nftables table, beside the overlay's devices: the ports it publishes (the routing
 * mesh's, balanced over a service's tasks anywhere, and host-mode ones, to the tasks here), NAT to
 * the outside for its containers, and isolation between its networks, which its bridges' gateway
 * addresses would otherwise route between.
 *
 * Published ports follow vip.ts's layout, keyed by `protocol . port` on any of the node's own
 * addresses (`fib daddr type local`), as kube-proxy's node ports are. A connection sent to a task
 * on another node is masqueraded to the node's ingress address, so that the answer comes back
 * here to be un-NATed; one to a task on this node is not, and the task sees the client's address.
 * Rewritten whole in one `nft -f -` transaction, as the VIP tables are.
 */
import { run } from './command';
import { check, checkTable, DSTNAT, IPV4, removeVips } from './vip';

export interface MeshEndpoint {
  ip: string;
  port: number;
  /** On another node: masqueraded. */
  remote: boolean;
}

export interface MeshPort {
  protocol: 'tcp' | 'udp';
  port: number;
  endpoints: MeshEndpoint[];
}

export interface MeshState {
  ports: MeshPort[];
  /** Subnets of the networks this node carries: what leaves by another interface is masqueraded. */
  subnets: string[];
  /** The node's bridges: none forwards to another, except what a published port sent there. */
  bridges: string[];
  /** Every bridge's name starts with this (the overlay prefix's `<prefix>b`). */
  bridgePrefix: string;
}

const SRCNAT = 100;
/** Marks a connection for masquerading; the bit kube-proxy uses. */
const MASQ = '0x00004000';
const NAME = /^[a-z0-9]{1,15}$/;

const portKey = (p: MeshPort) => `${p.protocol}-${p.port}`;

/** The whole `nft -f` script that makes the table hold exactly this state. */
export function meshRuleset(table: string, state: MeshState): string {
  checkTable(table);
  check(`bridge prefix "${state.bridgePrefix}"`, NAME.test(state.bridgePrefix), 'must be lowercase letters or digits');
  const seen = new Set<string>();
  for (const p of state.ports) {
    check(`protocol "${p.protocol}"`, p.protocol === 'tcp' || p.protocol === 'udp', 'must be tcp or udp');
    for (const n of [p.port, ...p.endpoints.map((e) => e.port)]) check(`port ${n}`, Number.isInteger(n) && n >= 1 && n <= 65535, 'must be 1–65535');
    for (const e of p.endpoints) check(`endpoint "${e.ip}"`, IPV4.test(e.ip), 'is not an IPv4 address');
    check(`published port ${p.port}/${p.protocol}`, !seen.has(portKey(p)), 'is listed twice');
    seen.add(portKey(p));
  }
  for (const s of state.subnets) check(`subnet "${s}"`, /^[\d.]+\/\d{1,2}$/.test(s) && IPV4.test(s.split('/')[0]), 'is not an IPv4 subnet');
  for (const b of state.bridges) check(`bridge "${b}"`, NAME.test(b) && b.startsWith(state.bridgePrefix), `must be a name starting with ${state.bridgePrefix}`);

  const lines = [`table ip ${table} {}`, `delete table ip ${table}`, `table ip ${table} {`];
  const balanced = state.ports.filter((p) => p.endpoints.length > 0);
  const empty = state.ports.filter((p) => p.endpoints.length === 0);
  for (const p of balanced) {
    const picks: string[] = [];
    for (const [i, e] of p.endpoints.entries()) {
      const chain = `endpoint-${portKey(p)}-${e.ip}-${e.port}`;
      const mark = e.remote ? `meta mark set meta mark | ${MASQ} ` : '';
      lines.push(`  chain ${chain} {`, `    ${mark}meta l4proto ${p.protocol} dnat to ${e.ip}:${e.port}`, '  }');
      picks.push(`${i} : goto ${chain}`);
    }
    lines.push(`  chain port-${portKey(p)} {`, `    numgen random mod ${p.endpoints.length} vmap { ${picks.join(', ')} }`, '  }');
  }
  lines.push('  map published {', '    type inet_proto . inet_service : verdict');
  if (balanced.length) lines.push(`    elements = { ${balanced.map((p) => `${p.protocol} . ${p.port} : goto port-${portKey(p)}`).join(', ')} }`);
  lines.push('  }', '  set no-endpoints {', '    type inet_proto . inet_service');
  if (empty.length) lines.push(`    elements = { ${empty.map((p) => `${p.protocol} . ${p.port}`).join(', ')} }`);
  lines.push('  }');

  lines.push(
    '  chain nat-prerouting {',
    `    type nat hook prerouting priority ${DSTNAT}; policy accept;`,
    '    fib daddr type local meta l4proto . th dport vmap @published',
    '  }',
    // Loopback addresses cannot be the source of a routed packet: those are left alone.
    '  chain nat-output {',
    `    type nat hook output priority ${DSTNAT}; policy accept;`,
    '    ip daddr != 127.0.0.0/8 fib daddr type local meta l4proto . th dport vmap @published',
    '  }',
    '  chain nat-postrouting {',
    `    type nat hook postrouting priority ${SRCNAT}; policy accept;`,
    `    meta mark & ${MASQ} == ${MASQ} masquerade`,
  );
  if (state.subnets.length) lines.push(`    ip saddr { ${state.subnets.join(', ')} } oifname != "${state.bridgePrefix}*" masquerade`);
  lines.push('  }', '  chain filter-forward {', '    type filter hook forward priority 0; policy accept;', '    ct status dnat accept');
  for (const b of state.bridges) lines.push(`    iifname "${b}" oifname "${state.bridgePrefix}*" oifname != "${b}" drop`);
  lines.push(
    '  }',
    // A published port none of whose tasks runs refuses at once rather than leaving clients waiting.
    '  chain filter-input {',
    '    type filter hook input priority 0; policy accept;',
    '    fib daddr type local meta l4proto . th dport @no-endpoints reject',
    '  }',
    '}',
  );
  return lines.join('\n') + '\n';
}

/** Makes the node's table hold exactly this state, in one transaction. */
export async function applyMesh(table: string, state: MeshState, netns?: string): Promise<void> {
  await run('nft', ['-f', '-'], { netns, input: meshRuleset(table, state) });
}

/** Removes the node's table; a no-op when it does not exist. */
export const removeMesh = (table: string, netns?: string): Promise<void> => removeVips({ name: table, netns });

/** Lets the node forward between its uplink and its bridges (off by default in a new namespace). */
export async function enableForwarding(netns?: string): Promise<void> {
  await run('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1'], { netns });
}
