// reflect-metadata must load before @peculiar/x509: its dependency injection reads decorator metadata at import.
import 'reflect-metadata';
import * as crypto from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { invalidArgument } from '../common/errors';
import { SHOAL_TLS_NAME } from './tls-name';

x509.cryptoProvider.set(crypto.webcrypto as unknown as Crypto);

export type Role = 'manager' | 'worker' | 'admin';
export const ROLES: readonly Role[] = ['manager', 'worker', 'admin'];

/** Who a certificate speaks for: CN = nodeId, OU = role, O = clusterId. */
export interface Identity {
  nodeId: string;
  role: Role;
  clusterId: string;
}

/** A certificate and its PKCS#8 private key, both PEM. */
export interface KeyPair {
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  days?: number;
  dnsNames?: string[];
  ips?: string[];
  server?: boolean;
  client?: boolean;
}


const EC_KEY: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const DAY_MS = 24 * 3600 * 1000;
// Backdating keeps a certificate valid on a peer whose clock is a little behind the issuer's.
const CLOCK_SKEW_MS = 60 * 1000;

const subtle = () => crypto.webcrypto.subtle;

async function newKeys(): Promise<CryptoKeyPair> {
  return (await subtle().generateKey(EC_KEY, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await subtle().exportKey('pkcs8', key), 'PRIVATE KEY');
}

async function importSigningKey(keyPem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(keyPem)[0];
  if (!der) throw invalidArgument('the CA key is not a PEM private key');
  return subtle().importKey('pkcs8', der, EC_KEY, false, ['sign']);
}

// A positive 128-bit serial: the top bit is cleared so the DER integer needs no sign byte.
function serialNumber(): string {
  const bytes = crypto.randomBytes(16);
  bytes[0] &= 0x7f;
  return bytes.toString('hex');
}

function subjectName(subject: Identity): x509.JsonName {
  return [{ CN: [subject.nodeId] }, { OU: [subject.role] }, { O: [subject.clusterId] }];
}

function checkIdentity(subject: Identity): void {
  if (!subject.nodeId) throw invalidArgument('a certificate needs a node id (CN)');
  if (!ROLES.includes(subject.role)) {
    throw invalidArgument(`certificate role must be one of ${ROLES.join(', ')}, not "${subject.role}"`);
  }
  if (!subject.clusterId) throw invalidArgument('a certificate needs a cluster id (O)');
}

/** Makes the cluster's self-signed root CA: a long-lived P-256 key that only signs certificates. */
export async function createRootCA(commonName: string, years = 20): Promise<KeyPair> {
  const keys = await newKeys();
  const notBefore = new Date(Date.now() - CLOCK_SKEW_MS);
  const notAfter = new Date(notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + years);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [commonName] }],
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportKeyPem(keys.privateKey) };
}

/** A fresh key and a CSR for it. The joiner keeps the key; only the CSR leaves the node. */
export async function createKeyAndCsr(): Promise<{ keyPem: string; csrPem: string }> {
  const keys = await newKeys();
  // The subject is a placeholder: the issuer decides the identity and ignores what the CSR says.
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: ['shoal-csr'] }],
    keys,
    signingAlgorithm: SIGNING,
  });
  return { keyPem: await exportKeyPem(keys.privateKey), csrPem: csr.toString('pem') };
}

function parseCsr(csrPem: string): x509.Pkcs10CertificateRequest {
  try {
    return new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    throw invalidArgument('the certificate request is not a PEM-encoded PKCS#10 CSR');
  }
}

/**
 * Signs the public key of a CSR with the CA. Only the CSR's key is used: its subject and
 * extensions are ignored, because the identity is the issuer's decision, never the requester's.
 */
export async function issueCertificate(
  ca: KeyPair,
  csrPem: string,
  subject: Identity,
  opts: IssueOptions = {},
): Promise<string> {
  checkIdentity(subject);
  const csr = parseCsr(csrPem);
  if (!(await csr.verify())) throw invalidArgument('the certificate request signature does not verify');
  return signPublicKey(ca, await csr.publicKey.export(), subject, opts);
}

/** Makes a key and its certificate in one go, for clients that never send a CSR (admin, etcd). */
export async function issueKeyPair(ca: KeyPair, subject: Identity, opts: IssueOptions = {}): Promise<KeyPair> {
  checkIdentity(subject);
  const keys = await newKeys();
  const certPem = await signPublicKey(ca, keys.publicKey, subject, opts);
  return { certPem, keyPem: await exportKeyPem(keys.privateKey) };
}

async function signPublicKey(ca: KeyPair, publicKey: CryptoKey, subject: Identity, opts: IssueOptions): Promise<string> {
  const days = opts.days ?? 90;
  if (!(days > 0)) throw invalidArgument(`certificate lifetime must be a positive number of days, not ${days}`);
  for (const ip of opts.ips ?? []) {
    if (!isIP(ip)) throw invalidArgument(`certificate IP address "${ip}" is not an IPv4 or IPv6 address`);
  }
  const caCert = new x509.X509Certificate(ca.certPem);
  const signingKey = await importSigningKey(ca.keyPem);
  const server = opts.server ?? true;
  const client = opts.client ?? true;
  const usages = [
    ...(server ? [x509.ExtendedKeyUsage.serverAuth] : []),
    ...(client ? [x509.ExtendedKeyUsage.clientAuth] : []),
  ];
  if (usages.length === 0) throw invalidArgument('a certificate must be for a server, a client, or both');
  const dnsNames = [SHOAL_TLS_NAME, ...(opts.dnsNames ?? []).filter((n) => n !== SHOAL_TLS_NAME)];
  const notBefore = new Date(Date.now() - CLOCK_SKEW_MS);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: subjectName(subject),
    issuer: caCert.subjectName,
    notBefore,
    notAfter: new Date(notBefore.getTime() + days * DAY_MS),
    publicKey: publicKey,
    signingKey,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(usages),
      new x509.SubjectAlternativeNameExtension([
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...(opts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  return cert.toString('pem');
}

function parseCertificate(cert: string | Uint8Array<ArrayBuffer>): x509.X509Certificate {
  try {
    return new x509.X509Certificate(cert);
  } catch {
    throw invalidArgument('the certificate is not a PEM-encoded X.509 certificate');
  }
}

/**
 * The identity in a certificate subject, given its values of CN, OU and O. Each must appear once,
 * and OU must be a known role.
 */
export function identityFromSubject(values: (attribute: 'CN' | 'OU' | 'O') => readonly string[]): Identity {
  const field = (name: 'CN' | 'OU' | 'O', what: string): string => {
    const found = values(name);
    if (found.length !== 1 || !found[0]) {
      throw invalidArgument(`the certificate subject must hold exactly one ${name} (${what})`);
    }
    return found[0];
  };
  const role = field('OU', 'role');
  if (!ROLES.includes(role as Role)) {
    throw invalidArgument(`the certificate role (OU) must be one of ${ROLES.join(', ')}, not "${role}"`);
  }
  return { nodeId: field('CN', 'node id'), role: role as Role, clusterId: field('O', 'cluster id') };
}

/** The identity a certificate (PEM, or DER as TLS hands it over) carries, and its validity period. */
export function readIdentity(certPemOrDer: string | Uint8Array<ArrayBuffer>): Identity & { notBefore: Date; notAfter: Date } {
  const cert = parseCertificate(certPemOrDer);
  return {
    ...identityFromSubject((name) => cert.subjectName.getField(name)),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  };
}

/** SHA-256 of the CA certificate's DER, lower-case hex: what a join token pins. */
export function caDigest(caCertPem: string): string {
  // Node's own parser: @peculiar/x509's took 7 ms a join, which a thousand joins from one process felt.
  let der: Buffer;
  try {
    der = new crypto.X509Certificate(caCertPem).raw;
  } catch {
    throw invalidArgument('the certificate is not a PEM-encoded X.509 certificate');
  }
  return crypto.createHash('sha256').update(der).digest('hex');
}

/** Whether certPem was signed by caPem's key, names it as issuer, and is valid now. */
export function verifyChain(caPem: string, certPem: string, now = new Date()): boolean {
  let ca: crypto.X509Certificate;
  let cert: crypto.X509Certificate;
  try {
    ca = new crypto.X509Certificate(caPem);
    cert = new crypto.X509Certificate(certPem);
  } catch {
    return false;
  }
  if (!ca.ca || !cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return false;
  return new Date(cert.validFrom) <= now && now <= new Date(cert.validTo);
}
