import { defineConfig } from 'vitest/config';

// Integration tests share the host's runc, cgroups and mounts, so the files of a project run one at
// a time. The cluster tests' hosts are network namespaces with paths, cgroups and runc roots of their
// own, so that project can run beside the other; vitest queues every one-at-a-time project in one
// line, so test/run.sh (what `npm test` runs) starts the two as separate processes.
const shared = { testTimeout: 60_000, hookTimeout: 60_000, fileParallelism: false };

// e2e files whose one test node has a data dir, runc root and cgroup parent of its own, and that
// look at nothing else of the host: test/run.sh runs them after the cluster tests, in their
// process, so that the two processes take about as long as each other.
const ISOLATED = ['test/e2e/rolling-update.test.ts', 'test/e2e/service-update.test.ts', 'test/e2e/stop.test.ts', 'test/e2e/logs.test.ts'];

export default defineConfig({
  test: {
    projects: [
      { test: { ...shared, name: 'cluster', include: ['test/cluster/**/*.test.ts'] } },
      { test: { ...shared, name: 'isolated', include: ISOLATED } },
      { test: { ...shared, name: 'node', include: ['test/**/*.test.ts'], exclude: ['test/cluster/**', ...ISOLATED] } },
    ],
  },
});
