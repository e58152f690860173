import type * as grpc from '@grpc/grpc-js';
import { permissionDenied, unauthenticated } from '../common/errors';
import { type Identity, identityFromSubject, type Role } from './certificates';

type AnyServerCall =
  | grpc.ServerUnaryCall<unknown, unknown>
  | grpc.ServerWritableStream<unknown, unknown>
  | grpc.ServerReadableStream<unknown, unknown>
  | grpc.ServerDuplexStream<unknown, unknown>;

/** The identity of each peer certificate object: one per TLS connection (see pinPeerCertificate in ./tls), so once per connection. */
const identities = new WeakMap<object, Identity>();

/**
 * Who is calling, from the certificate the TLS layer verified; never from the request. null for an
 * anonymous caller and for the unix socket (grpc-js gives an empty auth context to both, so a
 * handler served on both must know from the server it runs in which one it is).
 */
export function peerIdentity(call: AnyServerCall): Identity | null {
  // grpc-js fills sslPeerCertificate only for a TLS peer whose certificate verified.
  const cert = call.getAuthContext()?.sslPeerCertificate;
  if (!cert?.raw) return null;
  let id = identities.get(cert);
  if (!id) {
    // Node has already parsed the subject; parsing the DER again would cost far more than the call.
    const subject = cert.subject as unknown as Record<string, string | string[] | undefined>;
    id = identityFromSubject((name) => [subject[name] ?? []].flat());
    identities.set(cert, id);
  }
  return id;
}

const ROLE_NAMES: Record<Role, string> = {
  manager: 'a manager',
  worker: 'a worker',
  admin: 'an admin client',
};

function oneOf(roles: Role[]): string {
  const names = roles.map((r) => ROLE_NAMES[r]);
  const last = names.pop();
  return names.length > 0 ? `${names.join(', ')} or ${last}` : `${last}`;
}

/**
 * The caller's identity when its certificate is of this cluster and has one of `roles`; otherwise an
 * UNAUTHENTICATED or PERMISSION_DENIED error whose sentence names `what` was asked for.
 */
export function requireRole(call: AnyServerCall, roles: Role[], what: string, clusterId: string): Identity {
  const hint = roles.includes('admin') ? ' (`shoal ca client-cert` on a manager makes an admin one)' : '';
  const id = peerIdentity(call);
  if (!id) {
    throw unauthenticated(`${what} needs a client certificate of this cluster: use ${oneOf(roles)} certificate${hint}`);
  }
  if (id.clusterId !== clusterId) {
    throw permissionDenied(`permission denied: the certificate belongs to cluster ${id.clusterId}, not to this cluster (${clusterId})`);
  }
  if (!roles.includes(id.role)) {
    throw permissionDenied(`permission denied: ${ROLE_NAMES[id.role]} certificate cannot use ${what}; use ${oneOf(roles)} certificate${hint}`);
  }
  return id;
}
