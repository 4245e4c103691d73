// The soak: long random runs of the ownership suite, split over files so that vitest runs them on
// both cores. Together with the rest of the suite, `npm test` executes over a million checked calls.
import { expect, test } from 'vitest';
import { runSuite } from '../checker/suites';
import { SEED } from './seed';
import { suiteFailure, TRACE_DIR } from './traced';

/** Runs per soak file: about 350,000 checked calls each. */
const SOAK_RUNS = 9_000;

export function soak(part: number): void {
  test('the ownership invariants hold over a long soak', ({ task }) => {
    const r = runSuite('ownership', { runs: SOAK_RUNS, seed: SEED + part, maxSteps: 80, inject: null, outDir: TRACE_DIR });
    task.meta.suiteResult = r;
    if (r.failure) expect.fail(suiteFailure(r));
    expect(r.calls).toBeGreaterThan(300_000);
  });
}
