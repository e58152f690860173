/**
 * Service VIPs balanced in the kernel by nftables (this kernel has no IPVS), in the layout of
 * kube-proxy's nftables mode: one verdict map from `VIP . protocol . port` to a chain per
 * service, which picks an endpoint with `numgen random mod N` and jumps to a chain per endpoint
 * that DNATs to it. Connections to a service without endpoints are refused at once instead of
 * hanging on an address nobody answers.
 *
 * The table is shoal's own and is rewritten whole from the wanted services in one `nft -f -`
 * transaction (made, deleted and made again), so every change switches traffic atomically and
 * whatever drifted is gone. Connections already made keep their endpoint: NAT lives in conntrack.
 * The hooks are output and prerouting, so it balances both what a namespace sends itself and what
 * it routes.
 *
 * A service on port 0 takes every port of its protocol and keeps the port (as Swarm's VIPs do for
 * a service that publishes none): a second map, keyed by `VIP . protocol`, looked up after the first.
 */
import { invalidArgument } from '../common/errors';
import { run } from './command';

export type VipProtocol = 'tcp' | 'udp';

export interface VipEndpoint {
  ip: string;
  port: number;
}

export interface VipService {
  vip: string;
  protocol: VipProtocol;
  /** 0: every port, each to the same port of an endpoint (whose port is then 0 too). */
  port: number;
  endpoints: VipEndpoint[];
}

/** Where the table lives: its name, and the network namespace (default: the caller's). */
export interface VipTable {
  name: string;
  netns?: string;
}

/** nft 1.0.6 refuses the `dstnat` keyword on the output hook; -100 is its value. */
export const DSTNAT = -100;

export const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const TABLE = /^[a-z][a-z0-9_-]{0,31}$/;

export function check(what: string, ok: boolean, rule: string): void {
  if (!ok) throw invalidArgument(`${what} ${rule}`);
}

export const checkTable = (table: string) => check(`table "${table}"`, TABLE.test(table), 'must be up to 32 lowercase letters, digits, - or _, starting with a letter');

function checkService(s: VipService): void {
  check(`vip "${s.vip}"`, IPV4.test(s.vip), 'is not an IPv4 address');
  check(`protocol "${s.protocol}"`, s.protocol === 'tcp' || s.protocol === 'udp', 'must be tcp or udp');
  if (s.port === 0) {
    for (const e of s.endpoints) check(`endpoint port ${e.port}`, e.port === 0, `of ${s.vip}, a service on every port, must be 0`);
  } else {
    const ports = [s.port, ...s.endpoints.map((e) => e.port)];
    for (const p of ports) check(`port ${p}`, Number.isInteger(p) && p >= 1 && p <= 65535, 'must be 1–65535');
  }
  for (const e of s.endpoints) check(`endpoint "${e.ip}"`, IPV4.test(e.ip), 'is not an IPv4 address');
}

const key = (s: VipService) => `${s.vip}-${s.protocol}-${s.port}`;
const serviceChain = (s: VipService) => `service-${key(s)}`;
const endpointChain = (s: VipService, e: VipEndpoint) => `endpoint-${key(s)}-${e.ip}-${e.port}`;

/** The whole `nft -f` script that makes the table hold exactly these services. */
export function vipRuleset(table: string, services: VipService[]): string {
  checkTable(table);
  const seen = new Set<string>();
  for (const s of services) {
    checkService(s);
    check(`service ${s.vip}:${s.port}/${s.protocol}`, !seen.has(key(s)), 'is listed twice');
    seen.add(key(s));
  }
  const lines = [`table ip ${table} {}`, `delete table ip ${table}`, `table ip ${table} {`];

  // Chains come before the map elements that point to them, or nft refuses the map.
  for (const s of services.filter((x) => x.endpoints.length > 0)) {
    for (const e of s.endpoints) {
      lines.push(`  chain ${endpointChain(s, e)} {`, `    meta l4proto ${s.protocol} dnat to ${e.ip}${e.port ? `:${e.port}` : ''}`, '  }');
    }
    const picks = s.endpoints.map((e, i) => `${i} : goto ${endpointChain(s, e)}`).join(', ');
    lines.push(`  chain ${serviceChain(s)} {`, `    numgen random mod ${s.endpoints.length} vmap { ${picks} }`, '  }');
  }
  const keyed = (map: string, set: string, type: string, of: VipService[], element: (s: VipService) => string) => {
    const balanced = of.filter((s) => s.endpoints.length > 0);
    const empty = of.filter((s) => s.endpoints.length === 0);
    lines.push(`  map ${map} {`, `    type ${type} : verdict`);
    if (balanced.length) lines.push(`    elements = { ${balanced.map((s) => `${element(s)} : goto ${serviceChain(s)}`).join(', ')} }`);
    lines.push('  }', `  set ${set} {`, `    type ${type}`);
    if (empty.length) lines.push(`    elements = { ${empty.map(element).join(', ')} }`);
    lines.push('  }');
  };
  keyed('service-ips', 'no-endpoints', 'ipv4_addr . inet_proto . inet_service', services.filter((s) => s.port), (s) => `${s.vip} . ${s.protocol} . ${s.port}`);
  keyed('service-ips-any-port', 'no-endpoints-any-port', 'ipv4_addr . inet_proto', services.filter((s) => !s.port), (s) => `${s.vip} . ${s.protocol}`);
  lines.push('  chain services {', '    ip daddr . meta l4proto . th dport vmap @service-ips', '    ip daddr . meta l4proto vmap @service-ips-any-port', '  }');
  for (const hook of ['prerouting', 'output']) {
    lines.push(`  chain nat-${hook} {`, `    type nat hook ${hook} priority ${DSTNAT}; policy accept;`, '    jump services', '  }');
  }
  for (const hook of ['forward', 'output']) {
    lines.push(
      `  chain filter-${hook} {`,
      `    type filter hook ${hook} priority 0; policy accept;`,
      '    ip daddr . meta l4proto . th dport @no-endpoints reject',
      '    ip daddr . meta l4proto @no-endpoints-any-port reject',
      '  }',
    );
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** Makes the table balance exactly these services, in one transaction. */
export async function applyVips(table: VipTable, services: VipService[]): Promise<void> {
  await run('nft', ['-f', '-'], { netns: table.netns, input: vipRuleset(table.name, services) });
}

/** Removes the table and everything in it; a no-op when it does not exist. */
export async function removeVips(table: VipTable): Promise<void> {
  checkTable(table.name);
  await run('nft', ['-f', '-'], { netns: table.netns, input: `table ip ${table.name} {}\ndelete table ip ${table.name}\n` });
}
