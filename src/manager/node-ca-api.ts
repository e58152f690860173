import type { Etcd3 } from 'etcd3';
import type { NodeCAHandlers } from '../gen/shoal/v1/NodeCA';
import type { Node__Output } from '../gen/shoal/v1/Node';
import type { NodeDescription__Output } from '../gen/shoal/v1/NodeDescription';
import { issueCertificate, type Identity } from '../ca/certificates';
import { requireRole } from '../ca/authz';
import { parseJoinToken } from '../ca/tokens';
import { failedPrecondition, invalidArgument, toServiceError } from '../common/errors';
import { unary } from '../common/grpc-handlers';
import { parseHostPort } from '../common/addresses';
import type { Logger } from '../common/logger';
import { newId, now } from '../common/tasks';
import { loadSecrets, roleOfToken } from './cluster-secrets';
import { managerAddrs } from './dispatcher/dispatcher';
import { addLearner, listMembers, removeMember } from './etcd/membership';
import { checkManagerRemoval, updateNodeWithRetry } from './nodes';
import type { StoreCache } from './store/cache';
import type { Store } from './store/store';

/**
 * The certificate authority and membership calls nodes make on a manager's TCP port. Anonymous
 * callers may fetch the CA and present a join token; everything else reads the caller's identity
 * from its certificate.
 */
export class NodeCaApi {
  constructor(
    private readonly store: Store,
    /** Where a join reads the manager list: a join listing every node from etcd made 1,000 joins quadratic. */
    private readonly cache: StoreCache,
    private readonly etcd: Etcd3,
    private readonly clusterId: string,
    private readonly log: Logger,
  ) {}

  handlers(): NodeCAHandlers {
    return {
      GetRootCA: unary(async () => ({ ca_pem: (await loadSecrets(this.store)).root_ca.certPem })),
      JoinCluster: unary((req) => this.join(req.token, req.csr_pem, req.description, req.advertise_addr)),
      RenewCertificate: (call, cb) => {
        const caller = requireRoleOrFail(call, cb, this.clusterId, ['worker', 'manager']);
        if (caller) unary(() => this.renew(caller, call.request.csr_pem))(call, cb);
      },
      JoinManagers: (call, cb) => {
        const caller = requireRoleOrFail(call, cb, this.clusterId, ['manager']);
        if (caller) unary(() => this.joinManagers(caller, call.request))(call, cb);
      },
      LeaveCluster: (call, cb) => {
        const caller = requireRoleOrFail(call, cb, this.clusterId, ['worker', 'manager']);
        if (caller) unary(() => this.leave(caller, call.request.abandon_join))(call, cb);
      },
    };
  }

  private async join(token: string, csrPem: string, description: NodeDescription__Output | null, advertise: string) {
    parseJoinToken(token);
    const secrets = await loadSecrets(this.store);
    const role = roleOfToken(secrets, token);
    if (!csrPem) throw invalidArgument('a certificate request (csr_pem) is required');
    const addr = parseHostPort(advertise, 'advertise address');
    const nodeId = newId();
    const certPem = await issueCertificate(secrets.root_ca, csrPem, { nodeId, role, clusterId: this.clusterId });
    const ts = now();
    const node: Node__Output = {
      id: nodeId,
      version: 0,
      spec: { role, availability: 'active', labels: {} },
      description: description ?? { hostname: '', platform: null, resources: null, engine_version: '' },
      status: { state: 'NODE_UNKNOWN', message: 'joined; waiting for its first session', addr: addr.host, heartbeat_at: '' },
      manager_status: role === 'manager' ? { leader: false, reachability: 'unreachable', addr: advertise, etcd_member_id: '' } : null,
      created_at: ts,
    };
    await this.store.commit([{ type: 'create', kind: 'nodes', obj: node }]);
    this.log.info({ nodeId, role, hostname: node.description?.hostname, addr: advertise }, 'node joined');
    const managers = managerAddrs([...this.cache.nodes().filter((n) => n.id !== nodeId), node]);
    return { node_id: nodeId, cluster_id: this.clusterId, role, cert_pem: certPem, ca_pem: secrets.root_ca.certPem, managers };
  }

  /** A new certificate for the caller's key, with the role the cluster now gives the node. */
  private async renew(caller: Identity, csrPem: string) {
    const node = await this.store.get<Node__Output>('nodes', caller.nodeId);
    if (!node) throw failedPrecondition(`node ${caller.nodeId} was removed from the cluster`);
    const secrets = await loadSecrets(this.store);
    const role = node.spec!.role === 'manager' ? 'manager' : 'worker';
    const certPem = await issueCertificate(secrets.root_ca, csrPem, { nodeId: caller.nodeId, role, clusterId: this.clusterId });
    return { cert_pem: certPem, ca_pem: secrets.root_ca.certPem, role };
  }

  /**
   * Adds the calling manager's etcd member as a learner and gives it what it needs to start: the
   * member list and a certificate from the etcd CA. The caller promotes it once it has caught up.
   */
  private async joinManagers(caller: Identity, req: { peer_url: string; client_url: string; etcd_csr_pem: string; cluster_addr: string }) {
    const node = await this.store.get<Node__Output>('nodes', caller.nodeId);
    if (!node || node.spec!.role !== 'manager') throw failedPrecondition(`node ${caller.nodeId} is not meant to be a manager`);
    parseHostPort(req.cluster_addr, 'cluster_addr');
    const peer = new URL(req.peer_url);
    const secrets = await loadSecrets(this.store);
    const host = peer.hostname.replace(/^\[|\]$/g, '');
    const etcdCert = await issueCertificate(
      secrets.etcd_ca,
      req.etcd_csr_pem,
      { nodeId: caller.nodeId, role: 'manager', clusterId: this.clusterId },
      { ips: [...new Set([host, '127.0.0.1'])], server: true, client: true },
    );
    const added = await addLearner(this.etcd, caller.nodeId, req.peer_url);
    await updateNodeWithRetry(this.store, caller.nodeId, (n) => ({
      ...n,
      manager_status: { leader: false, reachability: 'unreachable', ...n.manager_status, addr: req.cluster_addr, etcd_member_id: added.memberId },
    }));
    this.log.info({ nodeId: caller.nodeId, memberId: added.memberId, peerUrl: req.peer_url }, 'added etcd learner for a joining manager');
    return {
      initial_cluster: added.initialCluster,
      member_name: caller.nodeId,
      etcd_ca_pem: secrets.etcd_ca.certPem,
      etcd_cert_pem: etcdCert,
      client_urls: added.clientUrls,
      member_id: added.memberId,
    };
  }

  /**
   * The node leaves: it stays listed, Down, until `node rm`, as in Swarm; a manager's member goes.
   * A node whose join failed half-way is forgotten entirely.
   */
  private async leave(caller: Identity, abandonJoin: boolean) {
    const nodes = await this.store.list<Node__Output>('nodes');
    const node = nodes.find((n) => n.id === caller.nodeId);
    if (!node) return {};
    const memberId = node.manager_status?.etcd_member_id;
    if (abandonJoin) {
      if (memberId) await removeMember(this.etcd, memberId);
      await this.store.commit([{ type: 'delete', kind: 'nodes', id: node.id, version: node.version }]);
      this.log.warn({ nodeId: caller.nodeId }, 'a node that could not finish joining was removed');
      return {};
    }
    if (node.spec!.role === 'manager') {
      checkManagerRemoval(nodes, node, await listMembers(this.etcd));
      if (memberId) await removeMember(this.etcd, memberId);
    }
    await updateNodeWithRetry(this.store, caller.nodeId, (n) => ({
      ...n,
      spec: { ...n.spec!, role: 'worker' },
      manager_status: null,
      status: { ...n.status!, state: 'NODE_DOWN', message: 'node left the cluster' },
    }));
    this.log.info({ nodeId: caller.nodeId }, 'node left the cluster');
    return {};
  }
}

/** requireRole for a unary handler: answers the call with the refusal and returns undefined. */
function requireRoleOrFail(
  call: Parameters<typeof requireRole>[0],
  cb: (err: object | null) => void,
  clusterId: string,
  roles: Identity['role'][],
): Identity | undefined {
  try {
    return requireRole(call, roles, 'this call', clusterId);
  } catch (err) {
    cb(toServiceError(err));
    return undefined;
  }
}
