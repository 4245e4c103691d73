// Properties and directed tests added for mutation testing of hyp/ (docs/mutation.md): each kills
// mutants of hyp/ that the rest of the suite let survive. Also the lockstep suites at a size
// StrykerJS can afford per mutant (vitest.mutation.config.ts runs this file instead of
// ownership.test.ts): no shrinking (endOnFailure), so a killed mutant costs one failing run.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { SUITES, makeLockstep } from '../checker/suites';
import { runSequence } from '../checker/sequence';
import { sequenceArb } from '../checker/generators';
import { SEED } from './seed';

function lockstepHolds(name: 'ownership' | 'snapshot' | 'unwinder', runs: number, maxSteps: number): void {
  const def = SUITES[name];
  if (!def) throw new Error(`suite ${name} is not available`);
  const ls = makeLockstep(null);
  fc.assert(
    fc.property(sequenceArb(Math.min(maxSteps, def.maxSteps ?? maxSteps), def.step), (seq) => {
      const out = runSequence(ls, seq, def.resolve);
      if (out.failure) throw new Error(`${out.failure.property} at step ${out.failure.step}: ${out.failure.message}`);
    }),
    { seed: SEED, numRuns: runs, endOnFailure: true },
  );
}

describe('lockstep at mutation-testing size', () => {
  test('ownership: model and hyp agree and every invariant holds', () => lockstepHolds('ownership', 150, 60));
  test('snapshot: model and hyp agree and every invariant holds', () => lockstepHolds('snapshot', 30, 30));
  test('unwinder: model and hyp agree and every invariant holds', () => lockstepHolds('unwinder', 30, 4));
});
