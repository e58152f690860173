import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestRegistry } from '../registry/registry';
import { testImage } from './images';
import { apiOf, runningOf, tasksOf, waitFor } from './observe';
import { useE2eNode } from './use-node';
import { IDLE } from '../helpers/workloads';

// Two HTTPS registries on 127.0.0.1: one with a certificate from the CA the node is given, one
// with a certificate from a CA it does not know.
const trusted = new TestRegistry();
const stranger = new TestRegistry();

/** A new CA in `dir` and a server certificate it signed for 127.0.0.1; returns the CA's file. */
function makeCertificates(dir: string, registry: TestRegistry): string {
  const f = (name: string) => path.join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=shoal test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  openssl('req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  fs.writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('server.ext'), '-out', f('server.crt'));
  registry.tls = { certificate: f('server.crt'), key: f('server.key') };
  return f('ca.crt');
}

let ca = '';
beforeAll(async () => {
  ca = makeCertificates(trusted.dir, trusted);
  makeCertificates(stranger.dir, stranger);
  await Promise.all([trusted.start(), stranger.start()]);
});
afterAll(() => Promise.allSettled([trusted.destroy(), stranger.destroy()]));

const node = useE2eNode({ daemonArgs: () => [`--registry-ca=${ca}`] });

beforeAll(() => {
  for (const r of [trusted, stranger]) r.push(`oci-archive:${testImage(node)}`, 'team/app:1');
});

describe('--registry-ca with an HTTPS registry', () => {
  it('pulls over HTTPS from a registry whose certificate the CA signed', async () => {
    const out = node.ok('image', 'pull', `${trusted.host}/team/app:1`);
    expect(out).toMatch(new RegExp(`^Digest: (sha256:[a-f0-9]{64})\\nPulled: ${trusted.host}/team/app:1 \\([a-f0-9]{12}\\)\\n$`));
    const digest = /^Digest: (\S+)/.exec(out)![1];
    expect((await apiOf(node).listImages()).images.map((i) => i.digest)).toContain(digest);
    node.ok('image', 'rm', `${trusted.host}/team/app:1`);

    // A service: the manager pins the tag over HTTPS, and the worker pulls and runs it.
    node.ok('service', 'create', '--name', 'secure', `${trusted.host}/team/app:1`, ...IDLE);
    const [task] = await runningOf(node, 'secure');
    expect(task.spec!.container!.image).toBe(`${trusted.host}/team/app:1@${digest}`);
  });

  it('refuses a registry whose certificate another CA signed, and says it is the certificate', async () => {
    const ref = `${stranger.host}/team/app:1`;
    const pull = node.shoal('image', 'pull', ref);
    expect(pull.code).not.toBe(0);
    expect(pull.stderr).toMatch(/^Error: .*certificate/m);
    expect((await apiOf(node).listImages()).images.flatMap((i) => i.tags)).not.toContain(ref);

    const create = node.shoal('service', 'create', '-d', '--name', 'untrusted', '--restart-max-attempts', '0', ref, ...IDLE);
    expect(create.code, create.stderr).toBe(0);
    expect(create.stderr).toMatch(/^warning: image .* could not be resolved to a digest \(.*certificate.*\); keeping the tag/m);
    const rejected = await waitFor('the task to be rejected', async () => (await tasksOf(node, 'untrusted')).find((t) => t.status!.state === 'REJECTED'));
    expect(rejected.status!.err).toMatch(new RegExp(`^pulling image ${ref.replace(/\./g, '\\.')} failed: .*certificate`));
  });
});
