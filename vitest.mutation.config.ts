import { defineConfig } from 'vitest/config';

// The fast suite StrykerJS runs against every mutant of hyp/ (`npm run mutation`, see docs/mutation.md).
// Only fast files that drive hyp/, listed by name so that a new slow file does not join by accident:
// the lockstep suites at mutation-sized run counts, the directed tests of hyp/ by subject, the
// hand-written conformance table and the fault-log property. Everything else stays in `npm test`: a
// mutant that loops forever costs the whole covering suite's time (times timeoutFactor) before it is
// called a timeout, so this suite must run in seconds.
// The seed is fixed (PKVM_CHECK_SEED below, read by properties/seed.ts) so a
// mutant's verdict does not change between runs. No JUnit reporter: it would overwrite reports/junit.xml.
export const MUTATION_TEST_FILES = [
  'properties/lockstep-quick.test.ts',
  'properties/hyp-memory.test.ts',
  'properties/hyp-pool.test.ts',
  'properties/hyp-vmemmap.test.ts',
  'properties/hyp-fault-log.test.ts',
  'properties/hyp-pgtable.test.ts',
  'properties/hyp-mem_protect.test.ts',
  'properties/hyp-pkvm.test.ts',
  'properties/hyp-ptdump.test.ts',
  'properties/hyp-snapshot.test.ts',
  'properties/hyp-setup.test.ts',
  'properties/hyp-stacktrace.test.ts',
  'properties/conformance.test.ts',
  'properties/fault-log.test.ts',
];

export default defineConfig({
  test: {
    include: MUTATION_TEST_FILES,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    env: { PKVM_CHECK_SEED: '20261122' },
  },
});
