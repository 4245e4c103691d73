import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// The suite: one file per area under properties/. JUnit XML goes to reports/ for CI dashboards;
// test names never contain a seed, so a test keeps its identity across runs.
export default defineConfig({
  test: {
    include: ['properties/**/*.test.ts'],
    // The suite is CPU-bound: one worker per core (vitest's default leaves one core idle).
    maxWorkers: Math.max(2, availableParallelism()),
    testTimeout: 120_000,
    hookTimeout: 60_000,
    reporters: ['default', ['junit', { outputFile: 'reports/junit.xml', suiteName: 'pkvm-check' }]],
  },
});
