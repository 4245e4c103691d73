// The soak: long random runs of the ownership suite, split over files so that vitest runs them on
// both cores. Together with the rest of the suite, `npm test` executes over a million checked calls.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { runSuite } from '../checker/suites';
import { SEED } from './seed';

/** Runs per soak file: about 450,000 checked calls each. */
const SOAK_RUNS = 12_000;

export function soak(part: number): void {
  test('the ownership invariants hold over a long soak', () => {
    const r = runSuite('ownership', { runs: SOAK_RUNS, seed: SEED + part, maxSteps: 80, inject: null, outDir: mkdtempSync(join(tmpdir(), 'pkvm-soak-')) });
    expect(r.failure, r.failure ? `${r.failure.property} at step ${r.failure.step}: ${r.failure.message} (trace ${r.counterexample})` : '').toBeNull();
    expect(r.calls).toBeGreaterThan(350_000);
  });
}
