import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { failedPrecondition } from '../common/errors';

/** A node's TLS material as it lies on disk: the cluster CA, the node's certificate and its key. */
export interface NodeCertificates {
  caPem: string;
  certPem: string;
  keyPem: string;
}

const FILES: ReadonlyArray<{ field: keyof NodeCertificates; name: string; mode: number }> = [
  { field: 'caPem', name: 'ca.crt', mode: 0o644 },
  { field: 'certPem', name: 'node.crt', mode: 0o644 },
  { field: 'keyPem', name: 'node.key', mode: 0o600 },
];

// The three files must change together (a renewed certificate with the old key is useless), and one
// rename cannot replace three files. So a write stages them in STAGING, renames that directory to
// COMMIT (the atomic step), then moves each file into place; whoever finds COMMIT finishes the moves.
const STAGING = '.staging';
const COMMIT = '.commit';

export function certificatesDir(dataDir: string): string {
  return path.join(dataDir, 'certificates');
}

function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Moves the files of a committed write into place; a no-op unless a write was interrupted. */
function finishCommit(dir: string): void {
  const commit = path.join(dir, COMMIT);
  if (!fs.existsSync(commit)) return;
  for (const { name } of FILES) {
    const staged = path.join(commit, name);
    if (fs.existsSync(staged)) fs.renameSync(staged, path.join(dir, name));
  }
  fsyncPath(dir);
  fs.rmdirSync(commit);
}

/** Writes the CA, certificate and key so that a crash leaves either the old set or the new one. */
export function writeNodeCertificates(dataDir: string, certs: NodeCertificates): void {
  const dir = certificatesDir(dataDir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  finishCommit(dir);
  const staging = path.join(dir, STAGING);
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(staging, { mode: 0o700 });
  for (const { field, name, mode } of FILES) {
    const fd = fs.openSync(path.join(staging, name), 'wx', mode);
    try {
      fs.fchmodSync(fd, mode);
      fs.writeFileSync(fd, certs[field]);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  fsyncPath(staging);
  fs.renameSync(staging, path.join(dir, COMMIT));
  fsyncPath(dir);
  finishCommit(dir);
}

/**
 * The node's certificates, or null when it has none (it has not joined a cluster). A partial set,
 * or a key that does not belong to the certificate, is an error: it means the files were damaged.
 */
export function readNodeCertificates(dataDir: string): NodeCertificates | null {
  const dir = certificatesDir(dataDir);
  if (!fs.existsSync(dir)) return null;
  finishCommit(dir);
  const found: Partial<NodeCertificates> = {};
  const missing: string[] = [];
  for (const { field, name } of FILES) {
    try {
      found[field] = fs.readFileSync(path.join(dir, name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      missing.push(name);
    }
  }
  if (missing.length === FILES.length) return null;
  if (missing.length > 0) {
    throw failedPrecondition(`the node certificates in ${dir} are incomplete (${missing.join(', ')} missing); remove the directory and join the cluster again`);
  }
  const certs = found as NodeCertificates;
  if (!keyMatches(certs)) {
    throw failedPrecondition(`node.key in ${dir} is not the key of node.crt; remove the directory and join the cluster again`);
  }
  return certs;
}

function keyMatches({ certPem, keyPem }: NodeCertificates): boolean {
  try {
    return new crypto.X509Certificate(certPem).checkPrivateKey(crypto.createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** Forgets the node's certificates (leave, or a failed join). */
export function removeNodeCertificates(dataDir: string): void {
  fs.rmSync(certificatesDir(dataDir), { recursive: true, force: true });
}
