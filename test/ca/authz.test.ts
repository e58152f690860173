import type * as net from 'node:net';
import * as tls from 'node:tls';
import { status, type ServerUnaryCall } from '@grpc/grpc-js';
import { beforeAll, describe, expect, it } from 'vitest';
import { peerIdentity, requireRole } from '../../src/ca/authz';
import { createRootCA, type Identity, issueKeyPair, type KeyPair, type Role } from '../../src/ca/certificates';
import { SHOAL_TLS_NAME } from '../../src/ca/tls-name';
import { thrown } from './thrown';

// What grpc-js hands a handler: an auth context with the verified peer certificate, or an empty one.
type Call = ServerUnaryCall<unknown, unknown>;
const anonymous = { getAuthContext: () => ({}) } as unknown as Call;
// The peer certificate is taken from a real TLS handshake (Node parses it; the test must not fake that).
async function peerCertificateOf(ca: KeyPair, client: KeyPair): Promise<tls.PeerCertificate> {
  const server = await issueKeyPair(ca, { nodeId: 'node-s', role: 'manager', clusterId: 'cluster-1' });
  const listener = tls.createServer({ ca: ca.certPem, cert: server.certPem, key: server.keyPem, requestCert: true });
  let peer: tls.PeerCertificate | undefined;
  listener.on('secureConnection', (socket) => {
    peer = socket.getPeerCertificate();
    socket.end();
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const { port } = listener.address() as net.AddressInfo;
  await new Promise<void>((resolve, reject) => {
    const socket = tls.connect({ port, host: '127.0.0.1', ca: ca.certPem, cert: client.certPem, key: client.keyPem, servername: SHOAL_TLS_NAME });
    socket.on('error', reject);
    socket.on('close', () => resolve());
    socket.resume();
  });
  await new Promise<void>((resolve) => listener.close(() => resolve()));
  return peer!;
}

const withCertificate = (sslPeerCertificate: tls.PeerCertificate) =>
  ({ getAuthContext: () => ({ transportSecurityType: 'ssl', sslPeerCertificate }) }) as unknown as Call;

const callers: Record<Role, Identity> = {
  worker: { nodeId: 'node-w', role: 'worker', clusterId: 'cluster-1' },
  manager: { nodeId: 'node-m', role: 'manager', clusterId: 'cluster-1' },
  admin: { nodeId: 'admin-1', role: 'admin', clusterId: 'cluster-1' },
};
const calls = {} as Record<Role, Call>;
let foreignManager: Call;

beforeAll(async () => {
  const ca = await createRootCA('shoal-root-ca');
  for (const role of Object.keys(callers) as Role[]) {
    calls[role] = withCertificate(await peerCertificateOf(ca, await issueKeyPair(ca, callers[role])));
  }
  foreignManager = withCertificate(await peerCertificateOf(ca, await issueKeyPair(ca, { ...callers.manager, clusterId: 'cluster-2' })));
});

describe('peerIdentity', () => {
  it('reads node id, role and cluster id from the peer certificate', () => {
    expect(peerIdentity(calls.worker)).toEqual(callers.worker);
    expect(peerIdentity(calls.admin)).toEqual(callers.admin);
  });

  it('is null without a verified certificate (anonymous TLS and the unix socket alike)', () => {
    expect(peerIdentity(anonymous)).toBeNull();
  });
});

describe('requireRole', () => {
  const control: Role[] = ['manager', 'admin'];

  it('lets a manager and an admin client use the control API', () => {
    expect(requireRole(calls.manager, control, 'the control API', 'cluster-1')).toEqual(callers.manager);
    expect(requireRole(calls.admin, control, 'the control API', 'cluster-1')).toEqual(callers.admin);
  });

  it('refuses a worker with a sentence naming what it may not do and what to use instead', () => {
    const err = thrown(() => requireRole(calls.worker, control, 'the control API', 'cluster-1'));
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.message).toBe(
      'permission denied: a worker certificate cannot use the control API; use a manager or an admin client certificate (`shoal ca client-cert` on a manager makes an admin one)',
    );
  });

  it('refuses an admin client on the dispatcher, which is for nodes', () => {
    const err = thrown(() => requireRole(calls.admin, ['worker', 'manager'], 'the dispatcher', 'cluster-1'));
    expect(err.message).toBe('permission denied: an admin client certificate cannot use the dispatcher; use a worker or a manager certificate');
  });

  it('refuses a certificate of another cluster even with the right role', () => {
    const err = thrown(() => requireRole(foreignManager, control, 'the control API', 'cluster-1'));
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.message).toBe('permission denied: the certificate belongs to cluster cluster-2, not to this cluster (cluster-1)');
  });

  it('answers an anonymous caller UNAUTHENTICATED', () => {
    const err = thrown(() => requireRole(anonymous, control, 'the control API', 'cluster-1'));
    expect(err.code).toBe(status.UNAUTHENTICATED);
    expect(err.message).toBe(
      'the control API needs a client certificate of this cluster: use a manager or an admin client certificate (`shoal ca client-cert` on a manager makes an admin one)',
    );
  });
});
