import { invalidArgument } from '../common/errors';
import { LABEL_PREFIX } from './constraints';

/**
 * The node label a spread preference names (`node.labels.zone` → `zone`); the prefix is
 * case-insensitive, the label name is kept as written. Throws invalidArgument otherwise.
 */
export function parseSpread(descriptor: string): string {
  const d = descriptor.trim();
  if (d.length > LABEL_PREFIX.length && d.slice(0, LABEL_PREFIX.length).toLowerCase() === LABEL_PREFIX) return d.slice(LABEL_PREFIX.length);
  throw invalidArgument(`"${descriptor}" does not name a node label: use ${LABEL_PREFIX}<name>`);
}
