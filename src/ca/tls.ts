import * as grpc from '@grpc/grpc-js';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import { unavailable } from '../common/errors';
import { SHOAL_TLS_NAME } from './tls-name';
import type { NodeCertificates } from './files';

export interface TlsListener {
  /** The bound port (the one the OS chose when asked for 0). */
  port: number;
  /** New connections present `next` and trust its CA; established ones keep what they had. */
  update(next: NodeCertificates): void;
  /**
   * Stops listening and drops every connection this listener accepted. For a graceful stop, call
   * `server.tryShutdown()` first (it waits for calls in flight), then this.
   */
  close(): Promise<void>;
}

export interface ListenOptions {
  /** Told about each connection refused at the TLS layer (a certificate from another CA, a failed handshake). */
  onRefused?: (remote: string, reason: string) => void;
}

/**
 * Serves `server` over TLS on host:port the way Swarm's port 2377 does (Go's VerifyClientCertIfGiven):
 * a client certificate is requested; one that does not verify against the cluster CA is refused at
 * the handshake, and a client without one gets in anonymously (it may fetch the CA and join; the
 * handlers decide with `peerIdentity`).
 *
 * Why not grpc-js's own TLS: Node's TLS server knows only "require a valid certificate"
 * (`rejectUnauthorized: true`, which refuses joiners that have none yet) or "accept anything"
 * (`false`, which lets a certificate from another CA in as an anonymous caller). Every grpc-js
 * server credential, including `createCertificateProviderServerCredentials(…, false)`, is the
 * latter. So this module terminates TLS itself, decides on each finished handshake, and hands
 * the TLS socket to grpc-js through `server.createConnectionInjector`. grpc-js still reads the
 * peer certificate from that socket, so `call.getAuthContext()` works as with its own TLS (and
 * returns one object per connection: see pinPeerCertificate).
 */
export async function listenTls(
  server: grpc.Server,
  host: string,
  port: number,
  initial: NodeCertificates,
  opts: ListenOptions = {},
): Promise<TlsListener> {
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const tlsServer = tls.createServer({
    ...secureContextOptions(initial),
    requestCert: true,
    rejectUnauthorized: false,
    ALPNProtocols: ['h2'],
    // Node's default is 120 s: long enough for idle half-open connections to pile up on a public port.
    handshakeTimeout: 10_000,
  });
  const sockets = new Set<net.Socket>();
  tlsServer.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  tlsServer.on('secureConnection', (socket: tls.TLSSocket) => {
    const cert = pinPeerCertificate(socket);
    if (socket.authorized || !presented(cert)) {
      injector.injectConnection(socket);
      return;
    }
    opts.onRefused?.(remoteOf(socket), `client certificate refused: ${socket.authorizationError}`);
    socket.destroy();
  });
  tlsServer.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
    opts.onRefused?.(remoteOf(socket), `TLS handshake failed: ${err.message}`);
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      tlsServer.close();
      injector.destroy();
      reject(unavailable(`cannot listen on ${host}:${port}: ${err.message}`));
    };
    tlsServer.once('error', onError);
    tlsServer.listen(port, host, () => {
      tlsServer.off('error', onError);
      resolve();
    });
  });
  return {
    port: (tlsServer.address() as net.AddressInfo).port,
    update(next) {
      tlsServer.setSecureContext(secureContextOptions(next));
    },
    close: () =>
      new Promise<void>((resolve) => {
        tlsServer.close(() => resolve());
        injector.destroy();
        for (const socket of sockets) socket.destroy();
      }),
  };
}

function secureContextOptions(m: NodeCertificates): tls.SecureContextOptions {
  return { ca: m.caPem, cert: m.certPem, key: m.keyPem };
}

/**
 * grpc-js reads the peer certificate for the auth context of every call (each heartbeat and
 * status report), and Node builds that object anew from the TLS session each time: with a
 * thousand nodes it was the largest item of shoal's own code in a manager's profile. A
 * connection's peer certificate is settled by its handshake, renegotiation being refused, so it
 * is read once here and every later read returns that object (which also lets peerIdentity
 * remember the identity it carries).
 */
function pinPeerCertificate(socket: tls.TLSSocket): tls.PeerCertificate {
  socket.disableRenegotiation();
  const read = socket.getPeerCertificate.bind(socket);
  const cert = read();
  socket.getPeerCertificate = ((detailed?: boolean) => (detailed ? read(true) : cert)) as tls.TLSSocket['getPeerCertificate'];
  return cert;
}

// Without a client certificate, getPeerCertificate() returns an empty object.
function presented(cert: tls.PeerCertificate): boolean {
  return !!cert && Object.keys(cert).length > 0;
}

function remoteOf(socket: net.Socket): string {
  return `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? ''}`;
}

export interface ClientTls {
  credentials: grpc.ChannelCredentials;
  options: grpc.ChannelOptions;
}

/**
 * TLS to another node or a manager: trusts only the cluster CA and checks the fixed name every node
 * certificate carries, so peers can be dialled by IP. Without certPem/keyPem the caller is anonymous.
 */
export function clientCredentials(m: { caPem: string; certPem?: string; keyPem?: string }): ClientTls {
  const credentials = grpc.credentials.createSsl(
    Buffer.from(m.caPem),
    m.keyPem ? Buffer.from(m.keyPem) : null,
    m.certPem ? Buffer.from(m.certPem) : null,
  );
  return { credentials, options: { 'grpc.ssl_target_name_override': SHOAL_TLS_NAME } };
}

let unverified: ClientTls | undefined;

/**
 * TLS that does not verify the server, for one purpose: a joiner fetching the cluster CA before it
 * trusts anything. grpc-js does not expose the certificate an unverified server presented (its auth
 * context is empty unless the peer verified), so the joiner fetches the CA by RPC on this channel,
 * checks it with `caMatchesToken`, and sends the token's secret only on a new channel made with
 * `clientCredentials({ caPem })`, which verifies the server against that CA.
 */
export function unverifiedCredentials(): ClientTls {
  // One for the process: without roots, Node loads its whole public CA bundle into every new
  // context (about 50 ms of CPU), which a thousand joins from one process turned into minutes.
  unverified ??= {
    credentials: grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false }),
    options: { 'grpc.ssl_target_name_override': SHOAL_TLS_NAME },
  };
  return unverified;
}
