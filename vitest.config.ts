import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';
import { SummaryReporter } from './properties/summary-reporter';

// The suite: one file per area under properties/. JUnit XML goes to reports/ for CI dashboards;
// test names never contain a seed, so a test keeps its identity across runs. Every run, and every
// CI shard, also writes reports/summary.json and summary.md (properties/summary-reporter.ts), pass
// or fail; temporary files go to one folder that is removed at the end (properties/tmpdir-setup.ts).
export default defineConfig({
  test: {
    include: ['properties/**/*.test.ts'],
    globalSetup: ['properties/tmpdir-setup.ts'],
    // The suite is CPU-bound: one worker per core (vitest's default leaves one core idle).
    maxWorkers: Math.max(2, availableParallelism()),
    testTimeout: 120_000,
    hookTimeout: 60_000,
    reporters: ['default', ['junit', { outputFile: 'reports/junit.xml', suiteName: 'pkvm-check' }], new SummaryReporter()],
  },
});
