import { defineConfig } from 'vitest/config';

// Integration tests share the host's runc, cgroups and mounts, so the files of a project run one at
// a time. The cluster tests' hosts are network namespaces with paths, cgroups and runc roots of their
// own, so that project can run beside the other; vitest queues every one-at-a-time project in one
// line, so test/run.sh (what `npm test` runs) starts the two as separate processes.
const shared = { testTimeout: 60_000, hookTimeout: 60_000, fileParallelism: false };

export default defineConfig({
  test: {
    projects: [
      { test: { ...shared, name: 'cluster', include: ['test/cluster/**/*.test.ts'] } },
      { test: { ...shared, name: 'node', include: ['test/**/*.test.ts'], exclude: ['test/cluster/**'] } },
    ],
  },
});
