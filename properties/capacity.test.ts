// Capacity edges (issue 15.7): random sequences that start with the 255 VM slots or the 128-entry
// host fault log filled to one short of full, full, or one past full (checker/capacity.ts).
import { describe, expect, test } from 'vitest';
import { CAPACITIES, capacityPrefixArb, fillSteps, type Capacity } from '../checker/capacity';
import { makeLockstep, runSuite } from '../checker/suites';
import { runSteps } from '../checker/sequence';
import { DEFAULT_CONFIG, FAULT_LOG_SIZE } from '../types/config';
import { SEED } from './seed';
import { suiteFailure, TRACE_DIR } from './traced';

describe('capacity edges', () => {
  test.each([
    ['vm-slots', '-ENOMEM'],
    ['fault-log', '-EPERM'],
  ] as const)('filling %s: every step up to full succeeds as the model says, the one past full gets %s', (capacity: Capacity, past) => {
    const ls = makeLockstep(null, DEFAULT_CONFIG);
    try {
      const steps = fillSteps(DEFAULT_CONFIG, capacity, CAPACITIES[capacity] + 1).map((s) => s.fixed!);
      const out = runSteps(ls, steps);
      expect(out.failure).toBeNull();
      expect(ls.results.slice(0, -1).every((r) => (capacity === 'vm-slots' ? r >= 0x1000 : r === -1))).toBe(true);
      expect(ls.coverage[steps[0].call]?.[past] ?? 0).toBeGreaterThan(0);
    } finally {
      ls.close();
    }
  });

  test('the ownership properties hold after each capacity is filled to full - 1, full and full + 1', ({ task }) => {
    const r = runSuite('ownership', { runs: 60, seed: SEED, maxSteps: 30, inject: null, outDir: TRACE_DIR, prefix: capacityPrefixArb }, DEFAULT_CONFIG);
    task.meta.suiteResult = r;
    if (r.failure) expect.fail(suiteFailure(r));
    // One past full was reached, and random steps ran there: VM creation refused, faults past the log.
    expect(r.coverage.__pkvm_init_vm?.['-ENOMEM'] ?? 0).toBeGreaterThan(60 / 6);
    expect(r.coverage.host_access?.['-EPERM'] ?? 0).toBeGreaterThan((60 / 6) * (FAULT_LOG_SIZE + 1));
    expect(r.coverage.__pkvm_teardown_vm?.['0'] ?? 0).toBeGreaterThan(0);
  });
});
