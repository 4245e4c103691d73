// Issue 15.11: no state outside simulated memory survives Lockstep.reset(). A sequence run on a
// runner that already ran another one must do exactly what it does on a fresh runner: same
// concrete steps, same results, same verdict. Otherwise a saved trace could replay differently in
// a fresh process (which is how every counterexample is checked before it is written).
import { describe, expect, test } from 'vitest';
import { fc } from '@fast-check/vitest';
import { sequenceArb } from '../checker/generators';
import { runSequence } from '../checker/sequence';
import { makeLockstep, SUITES } from '../checker/suites';
import type { SuiteName } from '../checker/suite-types';
import { SEED } from './seed';

type Sequence = Parameters<typeof runSequence>[1];

function outcome(name: SuiteName, first: Sequence | null, second: Sequence) {
  const def = SUITES[name]!;
  const ls = makeLockstep(null);
  if (first) runSequence(ls, first, def.resolve);
  const out = runSequence(ls, second, def.resolve);
  return { steps: out.steps, results: [...ls.results], failure: out.failure };
}

describe.each(['ownership', 'snapshot', 'unwinder'] as const)('%s: a runner after reset() is a fresh runner', (name) => {
  const def = SUITES[name]!;
  const seq = sequenceArb(Math.min(40, def.maxSteps ?? 40), def.step(() => true));
  test('the second sequence runs as on a fresh runner', () => {
    fc.assert(
      fc.property(seq, seq, (first, second) => {
        expect(outcome(name, first, second)).toEqual(outcome(name, null, second));
      }),
      { seed: SEED, numRuns: 25 },
    );
  });
});
