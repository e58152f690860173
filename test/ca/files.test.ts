import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRootCA, type Identity, issueKeyPair } from '../../src/ca/certificates';
import {
  certificatesDir,
  type NodeCertificates,
  readNodeCertificates,
  removeNodeCertificates,
  writeNodeCertificates,
} from '../../src/ca/files';
import { thrown } from './thrown';

const node: Identity = { nodeId: 'node-1', role: 'manager', clusterId: 'cluster-1' };

let first: NodeCertificates;
let renewed: NodeCertificates;
beforeAll(async () => {
  const ca = await createRootCA('shoal-root-ca');
  const [a, b] = await Promise.all([issueKeyPair(ca, node), issueKeyPair(ca, node)]);
  first = { caPem: ca.certPem, ...a };
  renewed = { caPem: ca.certPem, ...b };
});

let dataDir: string;
beforeEach(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-ca-files-'));
});
afterEach(() => {
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const mode = (p: string) => fs.statSync(p).mode & 0o777;

describe('node certificate files', () => {
  it('are null before the node has any', () => {
    expect(readNodeCertificates(dataDir)).toBeNull();
    fs.mkdirSync(certificatesDir(dataDir));
    expect(readNodeCertificates(dataDir)).toBeNull();
  });

  it('round-trip, at <data-dir>/certificates/{ca.crt,node.crt,node.key}', () => {
    writeNodeCertificates(dataDir, first);
    expect(readNodeCertificates(dataDir)).toEqual(first);
    const dir = path.join(dataDir, 'certificates');
    expect(fs.readdirSync(dir).sort()).toEqual(['ca.crt', 'node.crt', 'node.key']);
    expect(fs.readFileSync(path.join(dir, 'node.key'), 'utf8')).toBe(first.keyPem);
  });

  it('keep the key 0600 and the directory 0700, whatever the umask or the directory was before', () => {
    fs.mkdirSync(certificatesDir(dataDir), { mode: 0o755 });
    fs.chmodSync(certificatesDir(dataDir), 0o755);
    const umask = process.umask(0);
    try {
      writeNodeCertificates(dataDir, first);
    } finally {
      process.umask(umask);
    }
    const dir = certificatesDir(dataDir);
    expect(mode(dir)).toBe(0o700);
    expect(mode(path.join(dir, 'node.key'))).toBe(0o600);
    expect(mode(path.join(dir, 'node.crt'))).toBe(0o644);
    expect(mode(path.join(dir, 'ca.crt'))).toBe(0o644);
  });

  it('are replaced as a set by a renewal, leaving nothing staged behind', () => {
    writeNodeCertificates(dataDir, first);
    writeNodeCertificates(dataDir, renewed);
    expect(readNodeCertificates(dataDir)).toEqual(renewed);
    expect(fs.readdirSync(certificatesDir(dataDir)).sort()).toEqual(['ca.crt', 'node.crt', 'node.key']);
    expect(mode(path.join(certificatesDir(dataDir), 'node.key'))).toBe(0o600);
  });

  it('finish a write that crashed after its commit point', () => {
    writeNodeCertificates(dataDir, first);
    // The state a crash leaves after the staged set was committed and the key was moved into place.
    const commit = path.join(certificatesDir(dataDir), '.commit');
    fs.mkdirSync(commit);
    fs.writeFileSync(path.join(certificatesDir(dataDir), 'node.key'), renewed.keyPem);
    fs.writeFileSync(path.join(commit, 'ca.crt'), renewed.caPem);
    fs.writeFileSync(path.join(commit, 'node.crt'), renewed.certPem);
    expect(readNodeCertificates(dataDir)).toEqual(renewed);
    expect(fs.existsSync(commit)).toBe(false);
  });

  it('ignore a write that crashed before its commit point', () => {
    writeNodeCertificates(dataDir, first);
    const staging = path.join(certificatesDir(dataDir), '.staging');
    fs.mkdirSync(staging);
    fs.writeFileSync(path.join(staging, 'node.key'), renewed.keyPem);
    expect(readNodeCertificates(dataDir)).toEqual(first);
    writeNodeCertificates(dataDir, renewed);
    expect(readNodeCertificates(dataDir)).toEqual(renewed);
    expect(fs.existsSync(staging)).toBe(false);
  });

  it('refuse an incomplete set with one sentence naming what is missing', () => {
    writeNodeCertificates(dataDir, first);
    fs.rmSync(path.join(certificatesDir(dataDir), 'node.key'));
    const err = thrown(() => readNodeCertificates(dataDir));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.message).toBe(
      `the node certificates in ${certificatesDir(dataDir)} are incomplete (node.key missing); remove the directory and join the cluster again`,
    );
  });

  it('refuse a key that is not the certificate’s', () => {
    writeNodeCertificates(dataDir, { ...first, keyPem: renewed.keyPem });
    expect(() => readNodeCertificates(dataDir)).toThrow(
      `node.key in ${certificatesDir(dataDir)} is not the key of node.crt; remove the directory and join the cluster again`,
    );
  });

  it('are gone after remove, which does not mind if there is nothing', () => {
    writeNodeCertificates(dataDir, first);
    removeNodeCertificates(dataDir);
    expect(fs.existsSync(certificatesDir(dataDir))).toBe(false);
    expect(readNodeCertificates(dataDir)).toBeNull();
    removeNodeCertificates(dataDir);
  });
});
