import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { type ClusterOptions, TestCluster } from './cluster';
import { buildTestImage } from './test-node';

export interface ClusterFixture {
  readonly cluster: TestCluster;
  /** A scratch directory of the file's own. */
  readonly work: string;
  /** The services a test made, removed after it (their containers waited for). */
  readonly services: string[];
}

/**
 * A cluster for one test file: made with the test image loaded on every host before the first
 * test; after each, the services it named removed; the hosts' log tails printed when one fails
 * (destroy() removes the logs); everything removed after the last.
 */
export function useTestCluster(opts: ClusterOptions): ClusterFixture {
  let cluster: TestCluster | undefined;
  let work = '';
  const services: string[] = [];
  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-cluster-'));
    cluster = await TestCluster.create(opts);
    const image = buildTestImage(work);
    for (const host of cluster.hosts) host.ok('image', 'load', image);
  }, 300_000);
  beforeEach(({ onTestFailed }) => onTestFailed(() => cluster?.printLogs()));
  afterEach(async () => {
    const names = services.splice(0);
    if (names.length) await cluster!.removeServices(names);
  }, 300_000);
  afterAll(async () => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
    await cluster?.destroy();
  }, 180_000);
  return {
    get cluster() {
      if (!cluster) throw new Error('the cluster is made in beforeAll');
      return cluster;
    },
    get work() {
      return work;
    },
    services,
  };
}
