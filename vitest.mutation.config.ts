import { defineConfig } from 'vitest/config';

// The fast suite StrykerJS runs against every mutant of hyp/ (`npm run mutation`, see docs/mutation.md).
// Only fast files that drive hyp/: the lockstep suites (ownership, snapshot, unwinder) at mutation-sized
// run counts and the directed kills (properties/mutation-*.test.ts), the hand-written conformance table
// and the fault-log property. Everything else stays in `npm test`: a mutant that loops forever costs
// the whole covering suite's time (times timeoutFactor) before it is called a timeout, so this suite
// must run in seconds.
// The seed is fixed (PKVM_CHECK_SEED below, read by properties/seed.ts) so a
// mutant's verdict does not change between runs. No JUnit reporter: it would overwrite reports/junit.xml.
export default defineConfig({
  test: {
    include: ['properties/mutation-*.test.ts', 'properties/conformance.test.ts', 'properties/fault-log.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    env: { PKVM_CHECK_SEED: '20261122' },
  },
});
