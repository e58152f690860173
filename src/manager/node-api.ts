import type { Etcd3 } from 'etcd3';
import type { ControlHandlers } from '../gen/shoal/v1/Control';
import type { Node__Output } from '../gen/shoal/v1/Node';
import type { NodeSpec } from '../gen/shoal/v1/NodeSpec';
import { aborted, failedPrecondition } from '../common/errors';
import { unary } from '../common/grpc-handlers';
import type { Logger } from '../common/logger';
import { reachableManagers } from './dispatcher/sessions';
import { listMembers, removeMember } from './etcd/membership';
import { LEADER_ELECTION } from './leader';
import { checkManagerRemoval, resolveNode, validateNodeSpec } from './nodes';
import type { Store } from './store/store';

export type NodeHandlers = Pick<ControlHandlers, 'ListNodes' | 'GetNode' | 'UpdateNode' | 'RemoveNode'>;

/** `shoal node …`: list, inspect, update (availability, labels, promote/demote) and remove nodes. */
export class NodeApi {
  constructor(
    private readonly store: Store,
    private readonly etcd: Etcd3,
    private readonly log: Logger,
  ) {}

  handlers(): NodeHandlers {
    return {
      ListNodes: unary(async () => ({ nodes: await this.listNodes() })),
      GetNode: unary(async (req) => resolveNode(await this.listNodes(), req.node)),
      UpdateNode: unary((req) => this.updateNode(req.node, req.version, req.spec)),
      RemoveNode: unary((req) => this.removeNode(req.node, req.force)),
    };
  }

  /** Nodes with their manager status as it is now: the leader, and which managers hold their lease. */
  private async listNodes(): Promise<Node__Output[]> {
    const [nodes, leaderId, reachable] = await Promise.all([
      this.store.list<Node__Output>('nodes'),
      this.etcd
        .election(LEADER_ELECTION)
        .leader()
        .catch(() => undefined),
      reachableManagers(this.etcd),
    ]);
    for (const n of nodes) {
      if (!n.manager_status) continue;
      n.manager_status.leader = n.id === leaderId;
      n.manager_status.reachability = reachable.has(n.id) ? 'reachable' : 'unreachable';
    }
    nodes.sort((a, b) => (a.description?.hostname ?? '').localeCompare(b.description?.hostname ?? '') || a.id.localeCompare(b.id));
    return nodes;
  }

  private async updateNode(ref: string, version: number, input: NodeSpec | null): Promise<Node__Output> {
    const nodes = await this.store.list<Node__Output>('nodes');
    const node = resolveNode(nodes, ref);
    if (version && version !== node.version) {
      throw aborted(`node ${node.description?.hostname || node.id} changed since it was read (version ${version}, now ${node.version}); retry`);
    }
    const spec = validateNodeSpec(input);
    const demote = node.spec!.role === 'manager' && spec.role === 'worker';
    if (demote) {
      checkManagerRemoval(nodes, node, await listMembers(this.etcd));
      // The member goes before the role: a manager whose etcd member is gone cannot count for quorum by mistake.
      if (node.manager_status?.etcd_member_id) await removeMember(this.etcd, node.manager_status.etcd_member_id);
    }
    const updated: Node__Output = {
      ...node,
      spec,
      manager_status: spec.role === 'manager' ? (node.manager_status ?? { leader: false, reachability: 'unreachable', addr: '', etcd_member_id: '' }) : null,
    };
    await this.store.commit([{ type: 'update', kind: 'nodes', obj: updated }]);
    if (node.spec!.role !== spec.role) this.log.info({ nodeId: node.id, role: spec.role }, demote ? 'node demoted' : 'node promoted');
    return updated;
  }

  private async removeNode(ref: string, force: boolean): Promise<{ id: string }> {
    const nodes = await this.store.list<Node__Output>('nodes');
    const node = resolveNode(nodes, ref);
    const name = node.description?.hostname || node.id;
    if (node.spec!.role === 'manager') {
      checkManagerRemoval(nodes, node, await listMembers(this.etcd));
      throw failedPrecondition(`node ${name} is a manager; demote it first (shoal node demote ${name})`);
    }
    if (node.status?.state === 'NODE_READY' && !force) {
      throw failedPrecondition(`node ${name} is Ready: stop it or have it leave first (shoal leave on that node), or remove it anyway with --force`);
    }
    await this.store.commit([{ type: 'delete', kind: 'nodes', id: node.id, version: node.version }]);
    this.log.info({ nodeId: node.id, force }, 'node removed');
    return { id: node.id };
  }
}
