// Properties and directed tests added for mutation testing of hyp/ (docs/mutation.md): each kills
// mutants of hyp/ that the rest of the suite let survive. Also the lockstep suites at a size
// StrykerJS can afford per mutant (vitest.mutation.config.ts runs this file instead of
// ownership.test.ts): no shrinking (endOnFailure), so a killed mutant costs one failing run.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { SUITES, makeLockstep } from '../checker/suites';
import { runSequence } from '../checker/sequence';
import { sequenceArb } from '../checker/generators';
import { DEFAULT_CONFIG, PA_PFNS, type MachineConfig } from '../types/config';
import { EINVAL, EPERM } from '../types/errno';
import { Pkvm } from '../hyp/pkvm';
import { SEED } from './seed';

function lockstepHolds(name: 'ownership' | 'snapshot' | 'unwinder', runs: number, maxSteps: number, config: MachineConfig = DEFAULT_CONFIG): void {
  const def = SUITES[name];
  if (!def) throw new Error(`suite ${name} is not available`);
  const ls = makeLockstep(null, config);
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

// Two memory regions with a 2 MiB MMIO hole between them: find_mem_range's walk over the regions,
// range checks that straddle a region's end, and idmap blocks that must stop at the hole.
const TWO_REGIONS: MachineConfig = { memory: [[0x40000, 0x200], [0x40400, 0x1000]], pageSize: 4096 };

describe('lockstep on a machine with two memory regions', () => {
  test('ownership: model and hyp agree and every invariant holds', () => lockstepHolds('ownership', 150, 40, TWO_REGIONS));

  test('rule 1 at the regions\' edges and at the top of the physical address space', () => {
    const hyp = new Pkvm(TWO_REGIONS);
    expect(hyp.check_range_allowed_memory(0x401ff, 1)).toBe(0);
    expect(hyp.check_range_allowed_memory(0x401ff, 2)).toBe(-EINVAL); // runs into the hole
    expect(hyp.check_range_allowed_memory(0x40200, 0x200)).toBe(-EPERM); // exactly the hole
    expect(hyp.check_range_allowed_memory(0x40200, 0x201)).toBe(-EINVAL); // the hole and a page of region 2
    expect(hyp.check_range_allowed_memory(0x3ffff, 1)).toBe(-EPERM);
    expect(hyp.check_range_allowed_memory(0x3ffff, 2)).toBe(-EINVAL);
    expect(hyp.check_range_allowed_memory(0x40000, 0x200)).toBe(0);
    expect(hyp.check_range_allowed_memory(0x40400, 0x1000)).toBe(0);
    expect(hyp.check_range_allowed_memory(0x40400, 0x1001)).toBe(-EINVAL);
    expect(hyp.check_range_allowed_memory(0x41400, 1)).toBe(-EPERM);
    expect(hyp.check_range_allowed_memory(PA_PFNS - 1, 1)).toBe(-EPERM);
    expect(hyp.check_range_allowed_memory(PA_PFNS - 1, 2)).toBe(-EINVAL);
    expect(hyp.find_mem_range(0x40300)).toEqual({ start: 0x40200, end: 0x40400, memory: false });
    expect(hyp.find_mem_range(0x10)).toEqual({ start: 0, end: 0x40000, memory: false });
    expect(hyp.find_mem_range(0x40401)).toEqual({ start: 0x40400, end: 0x41400, memory: true });
    expect(hyp.find_mem_range(0x41400)).toEqual({ start: 0x41400, end: PA_PFNS, memory: false });
    expect(hyp.__pkvm_host_share_hyp(PA_PFNS - 1)).toBe(-EPERM);
    expect(hyp.__pkvm_host_donate_hyp(0x401ff, 2)).toBe(-EINVAL);
  });
});
