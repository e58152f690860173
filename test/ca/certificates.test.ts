import 'reflect-metadata';
import * as crypto from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { status } from '@grpc/grpc-js';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  caDigest,
  createKeyAndCsr,
  createRootCA,
  identityFromSubject,
  issueCertificate,
  issueKeyPair,
  type Identity,
  type KeyPair,
  readIdentity,
  verifyChain,
} from '../../src/ca/certificates';
import { SHOAL_TLS_NAME } from '../../src/ca/tls-name';
import { rejected, thrown } from './thrown';

const worker: Identity = { nodeId: 'node-w1', role: 'worker', clusterId: 'cluster-1' };

let ca: KeyPair;
let otherCa: KeyPair;
beforeAll(async () => {
  [ca, otherCa] = await Promise.all([createRootCA('shoal-root-ca'), createRootCA('shoal-root-ca')]);
});

describe('createRootCA', () => {
  it('makes a self-signed P-256 CA that may only sign certificates', async () => {
    const cert = new x509.X509Certificate(ca.certPem);
    expect(cert.subject).toBe('CN=shoal-root-ca');
    expect(cert.issuer).toBe(cert.subject);
    expect(await cert.verify({ publicKey: cert.publicKey, signatureOnly: true })).toBe(true);
    expect(cert.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(true);
    expect(cert.getExtension(x509.KeyUsagesExtension)?.usages).toBe(
      x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
    );
    const key = crypto.createPrivateKey(ca.keyPem);
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(ca.keyPem.startsWith('-----BEGIN PRIVATE KEY-----')).toBe(true);
    expect(new crypto.X509Certificate(ca.certPem).checkPrivateKey(key)).toBe(true);
  });

  it('lives for the years asked', async () => {
    const short = await createRootCA('short', 2);
    const cert = new crypto.X509Certificate(short.certPem);
    const years = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / (365.25 * 24 * 3600e3);
    expect(years).toBeCloseTo(2, 1);
  });
});

describe('issueCertificate', () => {
  it('round-trips the identity the issuer chose, and chains to the CA', async () => {
    const { csrPem, keyPem } = await createKeyAndCsr();
    const certPem = await issueCertificate(ca, csrPem, worker);
    const id = readIdentity(certPem);
    expect({ nodeId: id.nodeId, role: id.role, clusterId: id.clusterId }).toEqual(worker);
    expect(verifyChain(ca.certPem, certPem)).toBe(true);
    expect(new crypto.X509Certificate(certPem).checkPrivateKey(crypto.createPrivateKey(keyPem))).toBe(true);
    expect(new crypto.X509Certificate(certPem).subject).toBe('CN=node-w1\nOU=worker\nO=cluster-1');
  });

  it('ignores the subject and extensions the CSR asks for', async () => {
    const keys = (await crypto.webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])) as CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: [{ CN: ['root-of-all'] }, { OU: ['manager'] }, { O: ['other-cluster'] }],
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.BasicConstraintsExtension(true),
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'evil.example' }]),
      ],
    });
    const cert = new x509.X509Certificate(await issueCertificate(ca, csr.toString('pem'), worker));
    expect(readIdentity(cert.toString('pem')).role).toBe('worker');
    expect(cert.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(false);
    const sans = cert.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON();
    expect(sans).toEqual([{ type: 'dns', value: SHOAL_TLS_NAME }]);
  });

  it('refuses a CSR whose public key was swapped after signing', async () => {
    const victim = await createKeyAndCsr();
    const attacker = await createKeyAndCsr();
    const der = Buffer.from(x509.PemConverter.decode(victim.csrPem)[0]!);
    const spki = (pem: string) => Buffer.from(new x509.Pkcs10CertificateRequest(pem).publicKey.rawData);
    const at = der.indexOf(spki(victim.csrPem));
    expect(at).toBeGreaterThan(0);
    spki(attacker.csrPem).copy(der, at);
    const tampered = x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
    const err = await rejected(issueCertificate(ca, tampered, worker));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.message).toBe('the certificate request signature does not verify');
  });

  it('refuses what is not a CSR', async () => {
    const err = await rejected(issueCertificate(ca, 'hello', worker));
    expect(err.message).toBe('the certificate request is not a PEM-encoded PKCS#10 CSR');
  });

  it('refuses an identity without a node id, cluster id or known role', async () => {
    const { csrPem } = await createKeyAndCsr();
    expect((await rejected(issueCertificate(ca, csrPem, { ...worker, nodeId: '' }))).message).toBe(
      'a certificate needs a node id (CN)',
    );
    expect((await rejected(issueCertificate(ca, csrPem, { ...worker, clusterId: '' }))).message).toBe(
      'a certificate needs a cluster id (O)',
    );
    expect((await rejected(issueCertificate(ca, csrPem, { ...worker, role: 'root' as never }))).message).toBe(
      'certificate role must be one of manager, worker, admin, not "root"',
    );
  });

  it('is valid for 90 days by default, backdated a minute, for server and client use, named shoal-node', async () => {
    const before = Date.now();
    const { csrPem } = await createKeyAndCsr();
    const cert = new x509.X509Certificate(await issueCertificate(ca, csrPem, worker));
    const notBefore = cert.notBefore.getTime();
    // Certificate times have one-second resolution.
    expect(notBefore).toBeLessThanOrEqual(before - 59_000);
    expect(notBefore).toBeGreaterThanOrEqual(before - 62_000);
    expect(cert.notAfter.getTime() - notBefore).toBe(90 * 24 * 3600e3);
    expect(cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages).toEqual([
      x509.ExtendedKeyUsage.serverAuth,
      x509.ExtendedKeyUsage.clientAuth,
    ]);
    expect(new crypto.X509Certificate(cert.toString('pem')).checkHost(SHOAL_TLS_NAME)).toBe(SHOAL_TLS_NAME);
  });

  it('takes days, extra names, IP addresses and the usages asked', async () => {
    const { csrPem } = await createKeyAndCsr();
    const pem = await issueCertificate(ca, csrPem, worker, {
      days: 2,
      dnsNames: ['etcd.local', SHOAL_TLS_NAME],
      ips: ['10.0.0.1', '::1'],
      server: false,
    });
    const cert = new x509.X509Certificate(pem);
    expect(cert.notAfter.getTime() - cert.notBefore.getTime()).toBe(2 * 24 * 3600e3);
    expect(cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages).toEqual([x509.ExtendedKeyUsage.clientAuth]);
    expect(cert.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON()).toEqual([
      { type: 'dns', value: SHOAL_TLS_NAME },
      { type: 'dns', value: 'etcd.local' },
      { type: 'ip', value: '10.0.0.1' },
      { type: 'ip', value: '::1' },
    ]);
  });

  it('refuses a bad IP address, a lifetime that is not positive, and a certificate for nothing', async () => {
    const { csrPem } = await createKeyAndCsr();
    expect((await rejected(issueCertificate(ca, csrPem, worker, { ips: ['10.0.0'] }))).message).toBe(
      'certificate IP address "10.0.0" is not an IPv4 or IPv6 address',
    );
    expect((await rejected(issueCertificate(ca, csrPem, worker, { days: 0 }))).message).toBe(
      'certificate lifetime must be a positive number of days, not 0',
    );
    expect((await rejected(issueCertificate(ca, csrPem, worker, { server: false, client: false }))).message).toBe(
      'a certificate must be for a server, a client, or both',
    );
  });
});

describe('issueKeyPair', () => {
  it('makes a key and its certificate for an admin client', async () => {
    const admin = await issueKeyPair(ca, { nodeId: 'admin-1', role: 'admin', clusterId: 'cluster-1' }, { server: false });
    expect(readIdentity(admin.certPem).role).toBe('admin');
    expect(verifyChain(ca.certPem, admin.certPem)).toBe(true);
    expect(new crypto.X509Certificate(admin.certPem).checkPrivateKey(crypto.createPrivateKey(admin.keyPem))).toBe(true);
  });
});

describe('readIdentity', () => {
  it('reads PEM and DER alike, with the validity period', async () => {
    const { certPem } = await issueKeyPair(ca, worker);
    const der = new crypto.X509Certificate(certPem).raw;
    const fromPem = readIdentity(certPem);
    expect(readIdentity(der)).toEqual(fromPem);
    expect(fromPem.notAfter.getTime() - fromPem.notBefore.getTime()).toBe(90 * 24 * 3600e3);
  });

  it('refuses a certificate without a role it knows', () => {
    expect(thrown(() => readIdentity(ca.certPem)).message).toBe('the certificate subject must hold exactly one OU (role)');
  });

  it('refuses what is not a certificate', () => {
    expect(thrown(() => readIdentity('nope')).message).toBe('the certificate is not a PEM-encoded X.509 certificate');
  });
});

describe('identityFromSubject', () => {
  const subject = (fields: Record<string, string[]>) => (name: string) => fields[name] ?? [];

  it('reads CN, OU and O', () => {
    expect(identityFromSubject(subject({ CN: ['n1'], OU: ['admin'], O: ['c1'] }))).toEqual({
      nodeId: 'n1',
      role: 'admin',
      clusterId: 'c1',
    });
  });

  it('refuses a repeated attribute, a missing one and an unknown role', () => {
    expect(thrown(() => identityFromSubject(subject({ CN: ['a', 'b'], OU: ['worker'], O: ['c1'] }))).message).toBe(
      'the certificate subject must hold exactly one CN (node id)',
    );
    expect(thrown(() => identityFromSubject(subject({ CN: ['a'], OU: ['worker'] }))).message).toBe(
      'the certificate subject must hold exactly one O (cluster id)',
    );
    expect(thrown(() => identityFromSubject(subject({ CN: ['a'], OU: ['root'], O: ['c1'] }))).message).toBe(
      'the certificate role (OU) must be one of manager, worker, admin, not "root"',
    );
  });
});

describe('caDigest', () => {
  it('is the lower-case SHA-256 of the DER, as openssl prints it', () => {
    const fingerprint = new crypto.X509Certificate(ca.certPem).fingerprint256.replace(/:/g, '').toLowerCase();
    expect(caDigest(ca.certPem)).toBe(fingerprint);
    expect(caDigest(ca.certPem)).toMatch(/^[0-9a-f]{64}$/);
    expect(caDigest(otherCa.certPem)).not.toBe(caDigest(ca.certPem));
  });
});

describe('verifyChain', () => {
  it('refuses a certificate from another CA that has the same name', async () => {
    const { certPem } = await issueKeyPair(otherCa, worker);
    expect(verifyChain(ca.certPem, certPem)).toBe(false);
    expect(verifyChain(otherCa.certPem, certPem)).toBe(true);
  });

  it('refuses a certificate outside its validity period', async () => {
    const { certPem } = await issueKeyPair(ca, worker, { days: 1 });
    expect(verifyChain(ca.certPem, certPem, new Date(Date.now() + 2 * 24 * 3600e3))).toBe(false);
    expect(verifyChain(ca.certPem, certPem, new Date(Date.now() - 3600e3))).toBe(false);
  });

  it('refuses a node certificate posing as the CA, and garbage', async () => {
    const node = await issueKeyPair(ca, worker);
    const signedByNode = await issueKeyPair(node, worker);
    expect(verifyChain(node.certPem, signedByNode.certPem)).toBe(false);
    expect(verifyChain(ca.certPem, 'garbage')).toBe(false);
    expect(verifyChain('garbage', node.certPem)).toBe(false);
  });
});
