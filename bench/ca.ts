/**
 * What the cluster CA costs per joining or renewing node: issuing a certificate for a CSR (what
 * JoinCluster and RenewCertificate do) and making a key pair with its certificate (what init and
 * `ca client-cert` do). Prints each run's mean over a batch and the median of the runs.
 *
 *   node dist/bench/ca.js [--runs 5] [--batch 20]
 */
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { createKeyAndCsr, createRootCA, type Identity, issueCertificate, issueKeyPair } from '../src/ca/certificates';
import { median } from './stats';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, batch: { type: 'string', default: '20' } } });
const runs = Number(values.runs);
const batch = Number(values.batch);
const worker: Identity = { nodeId: 'node-w1', role: 'worker', clusterId: 'cluster-1' };

async function meanMs(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < batch; i++) await fn();
  return (performance.now() - start) / batch;
}

async function main(): Promise<void> {
  const ca = await createRootCA('shoal-root-ca');
  const { csrPem } = await createKeyAndCsr();
  // Warm-up: the first calls include JIT compilation and lazy loading, not issuing.
  for (let i = 0; i < 3; i++) await issueCertificate(ca, csrPem, worker);
  const issue: number[] = [];
  const pair: number[] = [];
  for (let r = 0; r < runs; r++) {
    issue.push(await meanMs(() => issueCertificate(ca, csrPem, worker)));
    pair.push(await meanMs(() => issueKeyPair(ca, worker)));
    process.stdout.write(`run ${r + 1}: issueCertificate ${issue[r].toFixed(2)} ms, issueKeyPair ${pair[r].toFixed(2)} ms (mean of ${batch})\n`);
  }
  process.stdout.write(`median of ${runs}: issueCertificate ${median(issue).toFixed(2)} ms, issueKeyPair ${median(pair).toFixed(2)} ms\n`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
