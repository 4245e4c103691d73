import { defineConfig } from 'vitest/config';

// The fast suite StrykerJS runs against every mutant of hyp/ (`npm run mutation`, see docs/mutation.md).
// Only fast files that drive hyp/: the lockstep suites (ownership, snapshot, unwinder) at mutation-sized
// run counts and the directed kills (properties/mutation-*.test.ts), the hand-written conformance table,
// the saved traces, the fault log and the unwinder properties. The big runs (ownership.test.ts, the
// 1 GiB snapshot tests, the explorer) stay in `npm test`: per mutant they cost minutes.
// The seed is fixed (PKVM_CHECK_SEED below, read by properties/seed.ts) so a
// mutant's verdict does not change between runs. No JUnit reporter: it would overwrite reports/junit.xml.
export default defineConfig({
  test: {
    include: [
      'properties/mutation-*.test.ts',
      'properties/conformance.test.ts',
      'properties/regression.test.ts',
      'properties/fault-log.test.ts',
      'properties/unwinder.test.ts',
    ],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    env: { PKVM_CHECK_SEED: '20261122' },
  },
});
