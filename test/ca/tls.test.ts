import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerIdentity } from '../../src/ca/authz';
import { createRootCA, type Identity, issueKeyPair, type KeyPair } from '../../src/ca/certificates';
import type { NodeCertificates } from '../../src/ca/files';
import { type ClientTls, clientCredentials, listenTls, type TlsListener, unverifiedCredentials } from '../../src/ca/tls';

// A one-method service with raw bytes in and out: the handler answers with the caller's identity.
const WHOAMI = '/shoal.test.Probe/Whoami';
const raw = (b: Buffer) => b;
const probeService: grpc.ServiceDefinition = {
  whoami: {
    path: WHOAMI,
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};

const manager: Identity = { nodeId: 'node-m1', role: 'manager', clusterId: 'cluster-1' };
const worker: Identity = { nodeId: 'node-w1', role: 'worker', clusterId: 'cluster-1' };

interface Answer {
  identity: Identity | null;
  serverSerial: string | undefined;
}

let ca: KeyPair;
let serverMaterial: NodeCertificates;
let renewedMaterial: NodeCertificates;
let workerCert: KeyPair;
let foreignWorkerCert: KeyPair;
let server: grpc.Server;
let listener: TlsListener;
let unixDir: string;
let handled = 0;
const refused: string[] = [];

beforeAll(async () => {
  ca = await createRootCA('shoal-root-ca');
  const otherCa = await createRootCA('shoal-root-ca');
  // The server certificate names no IP address: clients reach it by IP through the name override.
  const [first, renewed] = await Promise.all([issueKeyPair(ca, manager), issueKeyPair(ca, manager)]);
  serverMaterial = { caPem: ca.certPem, ...first };
  renewedMaterial = { caPem: ca.certPem, ...renewed };
  workerCert = await issueKeyPair(ca, worker);
  foreignWorkerCert = await issueKeyPair(otherCa, worker);

  server = new grpc.Server();
  server.addService(probeService, {
    whoami: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      handled++;
      callback(null, Buffer.from(JSON.stringify(peerIdentity(call))));
    },
  });
  listener = await listenTls(server, '127.0.0.1', 0, serverMaterial, {
    onRefused: (remote, reason) => refused.push(`${remote} ${reason}`),
  });
  unixDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-ca-tls-'));
  await new Promise<number>((resolve, reject) =>
    server.bindAsync(`unix://${unixDir}/api.sock`, grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );
});

afterAll(async () => {
  server?.forceShutdown();
  await listener?.close();
  if (unixDir) fs.rmSync(unixDir, { recursive: true, force: true });
});

/** One call on a fresh channel, so every call makes its own connection and handshake. */
function whoami(target: string, tls: ClientTls, extra: grpc.ChannelOptions = {}): Promise<Answer> {
  const client = new grpc.Client(target, tls.credentials, {
    ...tls.options,
    ...extra,
    'grpc.use_local_subchannel_pool': 1,
  });
  return new Promise<Answer>((resolve, reject) => {
    const call = client.makeUnaryRequest(
      WHOAMI,
      raw,
      raw,
      Buffer.alloc(0),
      { deadline: Date.now() + 5000 },
      (err: grpc.ServiceError | null, res?: Buffer) => {
        const presented = call.getAuthContext()?.sslPeerCertificate;
        client.close();
        if (err) reject(err);
        else resolve({ identity: JSON.parse(res!.toString()), serverSerial: presented?.serialNumber });
      },
    );
  });
}

const tcp = () => `127.0.0.1:${listener.port}`;
const serialOf = (certPem: string) => new crypto.X509Certificate(certPem).serialNumber;

async function failure(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error('expected the call to fail');
}

describe('listenTls with the cluster CA', () => {
  it('(a) lets a client without a certificate in, as an anonymous caller', async () => {
    const answer = await whoami(tcp(), clientCredentials({ caPem: ca.certPem }));
    expect(answer.identity).toBeNull();
    expect(answer.serverSerial).toBe(serialOf(serverMaterial.certPem));
  });

  it('(b) sees a worker certificate as the worker it names', async () => {
    const answer = await whoami(tcp(), clientCredentials({ caPem: ca.certPem, ...workerCert }));
    expect(answer.identity).toEqual(worker);
  });

  it('(c) refuses a certificate from another CA at the handshake, before any handler runs', async () => {
    const before = handled;
    refused.length = 0;
    const err = await failure(whoami(tcp(), clientCredentials({ caPem: ca.certPem, ...foreignWorkerCert })));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(handled).toBe(before);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatch(/^127\.0\.0\.1:\d+ client certificate refused: UNABLE_TO_VERIFY_LEAF_SIGNATURE$/);
  });

  it('refuses a client that does not speak TLS', async () => {
    refused.length = 0;
    const err = await failure(whoami(tcp(), { credentials: grpc.credentials.createInsecure(), options: {} }));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(refused.some((r) => r.includes('TLS handshake failed'))).toBe(true);
  });

  it('(e) is reached by IP through the name override, and not without it', async () => {
    const pinned = clientCredentials({ caPem: ca.certPem, ...workerCert });
    expect((await whoami(tcp(), pinned)).identity).toEqual(worker);
    // Without the override the name checked is the one dialled (localhost here: Node warns about IPs as TLS names).
    const noOverride: ClientTls = { credentials: pinned.credentials, options: {} };
    const err = await failure(whoami(`localhost:${listener.port}`, noOverride));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toContain("Host: localhost. is not in the cert's altnames: DNS:shoal-node");
  });

  it('is not trusted by a client that pins another CA', async () => {
    const otherCa = await createRootCA('shoal-root-ca');
    const err = await failure(whoami(tcp(), clientCredentials({ caPem: otherCa.certPem })));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
  });

  it('can be called without verifying the server, to fetch the CA before trusting it', async () => {
    const answer = await whoami(tcp(), unverifiedCredentials());
    expect(answer.identity).toBeNull();
    // grpc-js keeps the auth context empty when the server was not verified: the CA comes by RPC.
    expect(answer.serverSerial).toBeUndefined();
  });

  it('sees the unix socket caller as anonymous too', async () => {
    const answer = await whoami(`unix://${unixDir}/api.sock`, { credentials: grpc.credentials.createInsecure(), options: {} });
    expect(answer.identity).toBeNull();
  });

  it('(d) presents a renewed certificate to new connections after update, without a restart', async () => {
    expect((await whoami(tcp(), clientCredentials({ caPem: ca.certPem }))).serverSerial).toBe(serialOf(serverMaterial.certPem));
    listener.update(renewedMaterial);
    const answer = await whoami(tcp(), clientCredentials({ caPem: ca.certPem, ...workerCert }));
    expect(answer.serverSerial).toBe(serialOf(renewedMaterial.certPem));
    expect(answer.identity).toEqual(worker);
  });

  it('keeps its certificate when an update does not hold together', async () => {
    expect(() => listener.update({ ...renewedMaterial, keyPem: workerCert.keyPem })).toThrow();
    const answer = await whoami(tcp(), clientCredentials({ caPem: ca.certPem }));
    expect(answer.serverSerial).toBe(serialOf(renewedMaterial.certPem));
  });
});

describe('TlsListener.close', () => {
  it('frees the port', async () => {
    const own = new grpc.Server();
    own.addService(probeService, { whoami: (_call: unknown, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from('null')) });
    const l = await listenTls(own, '127.0.0.1', 0, serverMaterial);
    await whoami(`127.0.0.1:${l.port}`, clientCredentials({ caPem: ca.certPem }));
    own.forceShutdown();
    await l.close();
    const probe = net.createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(l.port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });

  it('reports a port that is taken with one sentence', async () => {
    const own = new grpc.Server();
    try {
      await expect(listenTls(own, '127.0.0.1', listener.port, serverMaterial)).rejects.toThrow(
        `cannot listen on 127.0.0.1:${listener.port}: listen EADDRINUSE: address already in use 127.0.0.1:${listener.port}`,
      );
    } finally {
      own.forceShutdown();
    }
  });
});
