import type { Node__Output } from '../gen/shoal/v1/Node';
import { invalidArgument } from '../common/errors';

/** A parsed placement constraint such as `node.labels.zone==a`. */
export interface Constraint {
  /** The constraint as written, for messages. */
  text: string;
  /** Lower-cased fixed key (`node.hostname`), or `node.labels.` + the label name as written. */
  key: string;
  op: '==' | '!=';
  value: string;
}

const FIXED_KEYS = ['node.id', 'node.hostname', 'node.role', 'node.platform.os', 'node.platform.arch'];
export const LABEL_PREFIX = 'node.labels.';
const KEY_HELP = `use ${FIXED_KEYS.join(', ')} or ${LABEL_PREFIX}<name>`;

/** Parses `key==value` or `key!=value`; throws invalidArgument saying what is wrong. */
export function parseConstraint(text: string): Constraint {
  const match = /^(.*?)(==|!=)(.*)$/.exec(text);
  if (!match) throw invalidArgument(`"${text}" is not key==value or key!=value`);
  const rawKey = match[1].trim();
  const value = match[3].trim();
  const lower = rawKey.toLowerCase();
  let key: string;
  if (FIXED_KEYS.includes(lower)) key = lower;
  else if (lower.startsWith(LABEL_PREFIX) && rawKey.length > LABEL_PREFIX.length) key = LABEL_PREFIX + rawKey.slice(LABEL_PREFIX.length);
  else throw invalidArgument(`"${text}" has an unknown key "${rawKey}": ${KEY_HELP}`);
  if (!value) throw invalidArgument(`"${text}" has an empty value`);
  if (/[=!]/.test(value)) throw invalidArgument(`"${text}" has more than one operator`);
  return { text, key, op: match[2] as Constraint['op'], value };
}

// Workers may report the CPU architecture as Node (x64), uname (x86_64) or Go/OCI (amd64) name it.
const ARCH_ALIASES: Record<string, string> = { x64: 'amd64', x86_64: 'amd64', aarch64: 'arm64', armv7l: 'arm' };
export const normalizeArch = (arch: string): string => ARCH_ALIASES[arch.toLowerCase()] ?? arch.toLowerCase();

function nodeValue(key: string, node: Node__Output): string | undefined {
  switch (key) {
    case 'node.id':
      return node.id;
    case 'node.hostname':
      return node.description?.hostname;
    case 'node.role':
      return node.spec?.role;
    case 'node.platform.os':
      return node.description?.platform?.os;
    case 'node.platform.arch':
      return node.description?.platform?.architecture;
    default:
      return node.spec?.labels?.[key.slice(LABEL_PREFIX.length)];
  }
}

/** Values compare case-insensitively, as in Swarm; a missing label never equals anything. */
export function constraintMatches(c: Constraint, node: Node__Output): boolean {
  const actual = nodeValue(c.key, node);
  const arch = c.key === 'node.platform.arch';
  const equal =
    actual !== undefined &&
    (arch ? normalizeArch(actual) === normalizeArch(c.value) : actual.toLowerCase() === c.value.toLowerCase());
  return c.op === '==' ? equal : !equal;
}
