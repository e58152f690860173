import type { Node__Output } from '../gen/shoal/v1/Node';
import type { Platform__Output } from '../gen/shoal/v1/Platform';
import { normalizeArch } from './constraints';

/**
 * Whether a node's platform is one of those the task's image supports. No platforms: any node.
 * An empty os or architecture in an entry matches any; names compare as constraints do.
 */
export function platformMatches(platforms: Platform__Output[], node: Node__Output): boolean {
  if (!platforms.length) return true;
  const os = (node.description?.platform?.os ?? '').toLowerCase();
  const arch = normalizeArch(node.description?.platform?.architecture ?? '');
  return platforms.some((p) => (!p.os || p.os.toLowerCase() === os) && (!p.architecture || normalizeArch(p.architecture) === arch));
}
