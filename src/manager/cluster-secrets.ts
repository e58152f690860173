import type { KeyPair } from '../ca/certificates';
import { createRootCA } from '../ca/certificates';
import { newJoinToken, tokenMatches } from '../ca/tokens';
import { failedPrecondition, invalidArgument, permissionDenied } from '../common/errors';
import type { Store, Versioned } from './store/store';

/**
 * What only managers may know, under its own etcd key (never in an API answer): the cluster's root
 * CA and the separate CA of its etcd members (so a worker's certificate can never reach etcd),
 * and the two join tokens.
 */
export interface ClusterSecrets extends Versioned {
  root_ca: KeyPair;
  etcd_ca: KeyPair;
  worker_token: string;
  manager_token: string;
}

export const SECRETS_ID = 'cluster';
export type JoinRole = 'worker' | 'manager';

export async function newClusterSecrets(clusterId: string): Promise<ClusterSecrets> {
  const [rootCa, etcdCa] = await Promise.all([createRootCA(`shoal root CA ${clusterId}`), createRootCA(`shoal etcd CA ${clusterId}`)]);
  return {
    id: SECRETS_ID,
    version: 0,
    root_ca: rootCa,
    etcd_ca: etcdCa,
    worker_token: newJoinToken(rootCa.certPem),
    manager_token: newJoinToken(rootCa.certPem),
  };
}

export async function loadSecrets(store: Store): Promise<ClusterSecrets> {
  const secrets = await store.get<ClusterSecrets>('secrets', SECRETS_ID);
  if (!secrets) throw failedPrecondition('this cluster has no CA yet; is the node initialised?');
  return secrets;
}

export function checkJoinRole(role: string): JoinRole {
  if (role !== 'worker' && role !== 'manager') throw invalidArgument(`role must be "worker" or "manager", not "${role}"`);
  return role;
}

/** The role a presented join token grants; refuses a wrong or rotated-away token. */
export function roleOfToken(secrets: ClusterSecrets, token: string): JoinRole {
  if (tokenMatches(token, secrets.manager_token)) return 'manager';
  if (tokenMatches(token, secrets.worker_token)) return 'worker';
  throw permissionDenied('the join token is not valid for this cluster (wrong, or rotated since it was issued)');
}

/** Replaces a join token; the old one stops working with this write. */
export async function rotateToken(store: Store, role: JoinRole): Promise<string> {
  const secrets = await loadSecrets(store);
  const token = newJoinToken(secrets.root_ca.certPem);
  const next = { ...secrets, [`${role}_token`]: token };
  await store.commit([{ type: 'update', kind: 'secrets', obj: next }]);
  return token;
}
