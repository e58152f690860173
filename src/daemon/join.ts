import * as grpc from '@grpc/grpc-js';
import type { NodeCAClient } from '../gen/shoal/v1/NodeCA';
import type { NodeDescription } from '../gen/shoal/v1/NodeDescription';
import type { JoinClusterResponse__Output } from '../gen/shoal/v1/JoinClusterResponse';
import type { JoinManagersResponse__Output } from '../gen/shoal/v1/JoinManagersResponse';
import type { RenewCertificateResponse__Output } from '../gen/shoal/v1/RenewCertificateResponse';
import { createKeyAndCsr } from '../ca/certificates';
import type { NodeCertificates } from '../ca/files';
import { clientCredentials, unverifiedCredentials } from '../ca/tls';
import { caMatchesToken, parseJoinToken } from '../ca/tokens';
import { fromServiceError, permissionDenied, ShoalError, unavailable } from '../common/errors';
import { shoalProto } from '../common/proto';

// A join address that does not answer must fail in seconds, not hang.
const CALL_TIMEOUT_MS = 10_000;

export interface Joined {
  nodeId: string;
  clusterId: string;
  role: string;
  certs: NodeCertificates;
  managers: string[];
}

type Credentials = { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions };

/** One NodeCA call on a fresh channel, with a deadline and a sentence that names the manager. */
async function callNodeCa<Res>(addr: string, creds: Credentials, method: keyof NodeCAClient, req: object): Promise<Res> {
  const client = new (shoalProto().NodeCA)(addr, creds.credentials, creds.options);
  try {
    return await new Promise<Res>((resolve, reject) => {
      const fn = (client as unknown as Record<string, Function>)[method as string];
      fn.call(client, req, { deadline: Date.now() + CALL_TIMEOUT_MS }, (err: grpc.ServiceError | null, res: Res) => (err ? reject(err) : resolve(res)));
    });
  } catch (err) {
    const e = fromServiceError(err);
    if (e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED) {
      throw unavailable(`cannot reach a shoal manager at ${addr}: ${e.message}`);
    }
    throw e;
  } finally {
    client.close();
  }
}

/** Tries each manager in turn; the first answer wins, and the last error is the one reported. */
export async function callAnyManager<Res>(managers: string[], creds: Credentials, method: keyof NodeCAClient, req: object): Promise<Res> {
  let last: unknown = unavailable('no manager is known to this node');
  for (const addr of managers) {
    try {
      return await callNodeCa<Res>(addr, creds, method, req);
    } catch (err) {
      last = err;
      if (!(err instanceof ShoalError) || err.code !== grpc.status.UNAVAILABLE) throw err;
    }
  }
  throw last;
}

/**
 * The joining side, as in Swarm: fetch the cluster CA without trusting it, check it against the
 * digest in the token (so a man in the middle is caught before the secret is sent), then send the
 * token and a certificate request over TLS that trusts only that CA.
 */
export async function joinCluster(opts: { token: string; remote: string; advertise: string; description: NodeDescription }): Promise<Joined> {
  parseJoinToken(opts.token);
  const { ca_pem: caPem } = await callNodeCa<{ ca_pem: string }>(opts.remote, unverifiedCredentials(), 'GetRootCA', {});
  if (!caMatchesToken(caPem, opts.token)) {
    throw permissionDenied(`the manager at ${opts.remote} presented a CA that does not match the join token; check the token and the address`);
  }
  const { keyPem, csrPem } = await createKeyAndCsr();
  const res = await callNodeCa<JoinClusterResponse__Output>(opts.remote, clientCredentials({ caPem }), 'JoinCluster', {
    token: opts.token,
    csr_pem: csrPem,
    description: opts.description,
    advertise_addr: opts.advertise,
  });
  return {
    nodeId: res.node_id,
    clusterId: res.cluster_id,
    role: res.role,
    certs: { caPem: res.ca_pem, certPem: res.cert_pem, keyPem },
    managers: res.managers.length ? res.managers : [opts.remote],
  };
}

/** A fresh certificate for this node's identity, with the role the cluster now gives it. */
export async function renewCertificate(managers: string[], certs: NodeCertificates): Promise<{ certs: NodeCertificates; role: string }> {
  const { keyPem, csrPem } = await createKeyAndCsr();
  const res = await callAnyManager<RenewCertificateResponse__Output>(managers, clientCredentials(certs), 'RenewCertificate', { csr_pem: csrPem });
  return { certs: { caPem: res.ca_pem, certPem: res.cert_pem, keyPem }, role: res.role };
}

export interface ManagerJoin {
  initialCluster: string;
  clientUrls: string[];
  memberId: string;
  etcdTls: NodeCertificates;
}

/** Asks the managers to add this node's etcd member (as a learner) and for its etcd certificate. */
export async function joinManagers(managers: string[], certs: NodeCertificates, urls: { peerUrl: string; clientUrl: string; clusterAddr: string }): Promise<ManagerJoin> {
  const { keyPem, csrPem } = await createKeyAndCsr();
  const res = await callAnyManager<JoinManagersResponse__Output>(managers, clientCredentials(certs), 'JoinManagers', {
    peer_url: urls.peerUrl,
    client_url: urls.clientUrl,
    cluster_addr: urls.clusterAddr,
    etcd_csr_pem: csrPem,
  });
  return {
    initialCluster: res.initial_cluster,
    clientUrls: res.client_urls,
    memberId: res.member_id,
    etcdTls: { caPem: res.etcd_ca_pem, certPem: res.etcd_cert_pem, keyPem },
  };
}

/** The node tells the managers it leaves; `abandonJoin` when its join failed half-way. */
export async function leaveCluster(managers: string[], certs: NodeCertificates, abandonJoin = false): Promise<void> {
  await callAnyManager(managers, clientCredentials(certs), 'LeaveCluster', { abandon_join: abandonJoin });
}
