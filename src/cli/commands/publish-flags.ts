import { type Command, InvalidArgumentError } from 'commander';
import type { PortConfig__Output } from '../../gen/shoal/v1/PortConfig';
import type { ServiceSpec__Output } from '../../gen/shoal/v1/ServiceSpec';
import { invalidArgument } from '../../common/errors';

const PROTOCOLS = ['tcp', 'udp'];
const MODES = ['ingress', 'host'];
const LONG_KEYS = ['mode', 'published', 'target', 'protocol'];
const SYNTAX = 'PUBLISHED:TARGET[/PROTOCOL], TARGET[/PROTOCOL] or mode=ingress|host,published=PORT,target=PORT,protocol=tcp|udp';

function portOf(flag: string, what: string, text: string, min: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > 65535) {
    throw new InvalidArgumentError(`${flag}: the ${what} port must be a number from ${min} to 65535, got "${text}"`);
  }
  return Number(text);
}

function protocolOf(flag: string, text: string): string {
  if (!PROTOCOLS.includes(text)) throw new InvalidArgumentError(`${flag}: the protocol must be tcp or udp, got "${text}"`);
  return text;
}

/** Docker's long syntax: mode=host,published=9090,target=80,protocol=udp (target required). */
function parseLong(flag: string, v: string): PortConfig__Output {
  const fields = new Map<string, string>();
  for (const part of v.split(',')) {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim();
    if (eq < 0 || !LONG_KEYS.includes(key)) throw new InvalidArgumentError(`${flag}: "${part}" is not one of ${LONG_KEYS.map((k) => `${k}=…`).join(', ')} (in "${v}")`);
    if (fields.has(key)) throw new InvalidArgumentError(`${flag}: ${key} is given twice in "${v}"`);
    fields.set(key, part.slice(eq + 1).trim());
  }
  const target = fields.get('target');
  if (target === undefined) throw new InvalidArgumentError(`${flag}: target=PORT is required in "${v}"`);
  const mode = fields.get('mode') ?? 'ingress';
  if (!MODES.includes(mode)) throw new InvalidArgumentError(`${flag}: mode must be ingress or host, got "${mode}"`);
  return {
    protocol: protocolOf(flag, fields.get('protocol') ?? 'tcp'),
    target_port: portOf(flag, 'target', target, 1),
    published_port: portOf(flag, 'published', fields.get('published') ?? '0', 0),
    publish_mode: mode,
  };
}

/**
 * One --publish as Docker takes it: 8080:80, 8080:80/udp, 80 (the manager picks the published
 * port) or the long syntax. Names the flag in every refusal.
 */
export function parsePublish(flag: string, v: string): PortConfig__Output {
  const text = v.trim();
  if (text.includes('=')) return parseLong(flag, text);
  const m = /^(?:([^:/]*):)?([^:/]*)(?:\/(.*))?$/.exec(text);
  if (!m || !text) throw new InvalidArgumentError(`${flag} must be ${SYNTAX}, got "${v}"`);
  if (/\d-\d/.test(text)) throw new InvalidArgumentError(`${flag}: port ranges are not supported, got "${v}": publish each port`);
  return {
    protocol: protocolOf(flag, m[3] ?? 'tcp'),
    target_port: portOf(flag, 'target', m[2], 1),
    published_port: m[1] === undefined ? 0 : portOf(flag, 'published', m[1], 1),
    publish_mode: 'ingress',
  };
}

/** A --publish-rm: the published port, as 8080 or 8080/udp. */
export function parsePublishedPort(flag: string, v: string): { port: number; protocol: string } {
  const m = /^([^/]*)(?:\/(.*))?$/.exec(v.trim())!;
  return { port: portOf(flag, 'published', m[1], 1), protocol: protocolOf(flag, m[2] ?? 'tcp') };
}

/** A repeatable option parser collecting parse(flag, value) results. */
const repeated =
  <T>(flag: string, parse: (flag: string, v: string) => T) =>
  (v: string, previous: T[] = []) => [...previous, parse(flag, v)];

function endpointMode(v: string): string {
  if (v !== 'vip' && v !== 'dnsrr') throw new InvalidArgumentError(`--endpoint-mode must be vip or dnsrr, got "${v}"`);
  return v;
}

/** `service create`'s -p/--publish and --endpoint-mode. */
export function publishOptions(cmd: Command): Command {
  return cmd
    .option('-p, --publish <port>', `publish a port: ${SYNTAX} (repeatable)`, repeated('--publish', parsePublish), [])
    .option('--endpoint-mode <mode>', 'vip (the name resolves to a virtual IP) or dnsrr (to the task addresses)', endpointMode);
}

/** `service update`'s --publish-add, --publish-rm and --endpoint-mode. */
export function publishUpdateOptions(cmd: Command): Command {
  return cmd
    .option('--publish-add <port>', `publish a port, or change how one is published: ${SYNTAX} (repeatable)`, repeated('--publish-add', parsePublish), [])
    .option('--publish-rm <port>', 'stop publishing a port, by its published port: 8080 or 8080/udp (repeatable)', repeated('--publish-rm', parsePublishedPort), [])
    .option('--endpoint-mode <mode>', 'vip (the name resolves to a virtual IP) or dnsrr (to the task addresses)', endpointMode);
}

export interface PublishFlags {
  publish?: PortConfig__Output[];
  publishAdd?: PortConfig__Output[];
  publishRm?: { port: number; protocol: string }[];
  endpointMode?: string;
}

const samePublished = (a: PortConfig__Output, port: number, protocol: string) => a.published_port === port && a.protocol === protocol;

/**
 * Applies the flags onto the spec's endpoint spec, as Docker does: on update, ports removed first
 * (each must be published), then ports added, an added one replacing the one of its published
 * port and protocol. The daemon checks what the ports mean together.
 */
export function applyPublishFlags(spec: ServiceSpec__Output, f: PublishFlags): void {
  const e = spec.endpoint_spec ?? { mode: '', ports: [] };
  let ports = [...e.ports, ...(f.publish ?? [])];
  for (const rm of f.publishRm ?? []) {
    if (!ports.some((p) => samePublished(p, rm.port, rm.protocol))) throw invalidArgument(`--publish-rm: service ${spec.name} does not publish ${rm.port}/${rm.protocol}`);
    ports = ports.filter((p) => !samePublished(p, rm.port, rm.protocol));
  }
  for (const add of f.publishAdd ?? []) ports = [...ports.filter((p) => !add.published_port || !samePublished(p, add.published_port, add.protocol)), add];
  spec.endpoint_spec = { mode: f.endpointMode ?? e.mode, ports };
}

/** Docker's PORTS column: "*:8080->80/tcp, *:9090->80/udp". */
export const portsText = (ports: PortConfig__Output[]): string => ports.map((p) => `*:${p.published_port}->${p.target_port}/${p.protocol}`).join(', ');
