// The ownership, snapshot and unwinder lockstep suites at a size StrykerJS can afford per mutant
// (vitest.mutation.config.ts runs this file instead of ownership.test.ts; docs/mutation.md), and the
// ownership suite on a machine with two memory regions. No shrinking (endOnFailure), so a killed
// mutant costs one failing run.
import { describe, test } from 'vitest';
import fc from 'fast-check';
import { SUITES, makeLockstep } from '../checker/suites';
import { runSequence } from '../checker/sequence';
import { sequenceArb } from '../checker/generators';
import { DEFAULT_CONFIG, type MachineConfig } from '../types/config';
import { TWO_REGIONS } from './hyp-fixtures';
import { SEED } from './seed';

function lockstepHolds(name: 'ownership' | 'snapshot' | 'unwinder', runs: number, maxSteps: number, config: MachineConfig = DEFAULT_CONFIG): void {
  const def = SUITES[name];
  if (!def) throw new Error(`suite ${name} is not available`);
  const ls = makeLockstep(null, config);
  fc.assert(
    fc.property(sequenceArb(Math.min(maxSteps, def.maxSteps ?? maxSteps), def.step(() => true)), (seq) => {
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

describe('lockstep on a machine with two memory regions', () => {
  test('ownership: model and hyp agree and every invariant holds', () => lockstepHolds('ownership', 150, 40, TWO_REGIONS));
});
