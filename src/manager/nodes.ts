import type { IMember } from 'etcd3';
import type { Node__Output } from '../gen/shoal/v1/Node';
import type { NodeSpec } from '../gen/shoal/v1/NodeSpec';
import type { NodeSpec__Output } from '../gen/shoal/v1/NodeSpec';
import { status } from '@grpc/grpc-js';
import { failedPrecondition, invalidArgument, notFound, type ShoalError } from '../common/errors';
import type { Store } from './store/store';

const AVAILABILITIES = ['active', 'pause', 'drain'];
const ROLES = ['worker', 'manager'];
// Docker's label key rule, roughly: no spaces or '=', printable, bounded.
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._\-/]{0,127}$/;
const LABEL_VALUE_MAX = 256;
const CONFLICT_RETRIES = 5;

/** A node by exact id, then exact hostname, then unique id prefix, as Docker resolves them. */
export function resolveNode(nodes: Node__Output[], ref: string): Node__Output {
  if (!ref) throw invalidArgument('a node ID or hostname is required');
  const byId = nodes.find((n) => n.id === ref);
  if (byId) return byId;
  const byName = nodes.filter((n) => n.description?.hostname === ref);
  if (byName.length === 1) return byName[0];
  if (byName.length > 1) throw invalidArgument(`hostname "${ref}" is ambiguous: ${byName.length} nodes have it; use the node ID`);
  const byPrefix = nodes.filter((n) => n.id.startsWith(ref));
  if (byPrefix.length === 1) return byPrefix[0];
  if (byPrefix.length > 1) throw invalidArgument(`node ID prefix "${ref}" is ambiguous: it matches ${byPrefix.length} nodes`);
  throw notFound(`node ${ref} not found`);
}

/** Checks a node spec as sent by `node update`; the error names the field and the rule. */
export function validateNodeSpec(spec: NodeSpec | null | undefined): NodeSpec__Output {
  if (!spec) throw invalidArgument('invalid node spec: spec: required');
  const availability = spec.availability ?? '';
  if (!AVAILABILITIES.includes(availability)) {
    throw invalidArgument(`invalid node spec: availability: must be one of ${AVAILABILITIES.join(', ')}, not "${availability}"`);
  }
  const role = spec.role ?? '';
  if (!ROLES.includes(role)) throw invalidArgument(`invalid node spec: role: must be worker or manager, not "${role}"`);
  const labels = spec.labels ?? {};
  checkLabels(labels, 'node');
  return { role, availability, labels };
}

/** Checks the labels of a `what` spec (node, network) against Docker's rule for label keys and a bound on values. */
export function checkLabels(labels: Record<string, string>, what: string): void {
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_KEY.test(k)) throw invalidArgument(`invalid ${what} spec: labels: "${k}" is not a valid label key (letters, digits, . _ - /; at most 128)`);
    if (v.length > LABEL_VALUE_MAX) throw invalidArgument(`invalid ${what} spec: labels.${k}: longer than ${LABEL_VALUE_MAX} characters`);
  }
}

/**
 * Whether a manager may stop being one (demote, leave, node rm) without costing the cluster its
 * raft quorum: never the last manager, and never when the members left could not elect a leader.
 */
export function checkManagerRemoval(nodes: Node__Output[], node: Node__Output, members: IMember[]): void {
  const managers = nodes.filter((n) => n.spec?.role === 'manager');
  if (managers.length <= 1 && managers[0]?.id === node.id) {
    throw failedPrecondition(`node ${node.description?.hostname || node.id} is the last manager; the cluster would have none left`);
  }
  const voters = members.filter((m) => !m.isLearner);
  const remaining = voters.filter((m) => m.ID !== node.manager_status?.etcd_member_id);
  const reachable = managers.filter((m) => m.id !== node.id && m.status?.state === 'NODE_READY').length;
  if (remaining.length && reachable < Math.floor(remaining.length / 2) + 1) {
    throw failedPrecondition(
      `removing manager ${node.description?.hostname || node.id} would leave ${reachable} of ${remaining.length} managers reachable, less than a quorum; bring the others back first`,
    );
  }
}

/** Applies a change to a node as a compare-and-swap, re-reading and retrying on conflicts. */
export async function updateNodeWithRetry(store: Store, nodeId: string, change: (n: Node__Output) => Node__Output): Promise<Node__Output> {
  for (let attempt = 0; ; attempt++) {
    const node = await store.mustGet<Node__Output>('nodes', nodeId, 'node');
    const next = change(node);
    try {
      await store.commit([{ type: 'update', kind: 'nodes', obj: next }]);
      return next;
    } catch (err) {
      if (attempt >= CONFLICT_RETRIES || (err as ShoalError).code !== status.ABORTED) throw err;
    }
  }
}
