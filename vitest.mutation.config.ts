import { defineConfig } from 'vitest/config';

// The fast suite StrykerJS runs against every mutant of hyp/ (`npm run mutation`, see docs/mutation.md).
// Only the files that drive hyp/: the lockstep suites at mutation-sized run counts (properties/mutation-*.test.ts),
// the hand-written conformance table, the saved traces, the fault log, the snapshot and the unwinder.
// The seed is fixed (PKVM_CHECK_SEED, read by properties/seed.ts, set in stryker.config.json) so a
// mutant's verdict does not change between runs. No JUnit reporter: it would overwrite reports/junit.xml.
export default defineConfig({
  test: {
    include: [
      'properties/mutation-*.test.ts',
      'properties/conformance.test.ts',
      'properties/regression.test.ts',
      'properties/fault-log.test.ts',
      'properties/snapshot.test.ts',
      'properties/unwinder.test.ts',
      'properties/unwinder-bugs.test.ts',
      'properties/explore.test.ts',
    ],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    env: { PKVM_CHECK_SEED: '20261122' },
  },
});
