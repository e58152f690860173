import type { Node__Output } from '../gen/shoal/v1/Node';
import type { Placement__Output } from '../gen/shoal/v1/Placement';
import { constraintMatches, parseConstraint } from './constraints';
import { platformMatches } from './platform';

/**
 * Whether a node may ever run the placement's tasks: its constraints and platforms, the rules
 * that depend on the node alone (readiness and resources come and go). Throws invalidArgument
 * on a constraint that does not parse.
 */
export function placementMatcher(placement: Placement__Output | null | undefined): (node: Node__Output) => boolean {
  const constraints = (placement?.constraints ?? []).map(parseConstraint);
  const platforms = placement?.platforms ?? [];
  return (node) => platformMatches(platforms, node) && constraints.every((c) => constraintMatches(c, node));
}
