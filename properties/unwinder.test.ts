// The nVHE stack unwinder (SEMANTICS §7): on every generated stack, corrupted or not, the unwind stops
// within its bound and reads only the two stacks, EL2's buffer stays terminated, the host prints what
// the model says; an uncorrupted overflow prints the cover letter's shape, and both modes agree.
import { describe, expect, test } from 'vitest';
// fast-check through @fast-check/vitest's re-export; properties run with fc.check (assertTraced) under a plain
// vitest test, because test.prop appends its seed to the test name.
import { fc } from '@fast-check/vitest';
import { checkUnwind, traceFunctions } from '../checker/unwinder/check';
import { unwindStepArb } from '../checker/unwinder/generators';
import { countEntries, maxRecords, runHyp } from '../checker/unwinder/run';
import { applyCorruptions, buildScenario, targetBytes } from '../checker/unwinder/scenario';
import type { TraceStep } from '../checker/vocabulary';
import type { UnwindArgs, UnwindMode } from '../types/calls';
import { SEED } from './seed';
import { assertTraced } from './traced';

const argsOf = (s: TraceStep): UnwindArgs => {
  if (s.call !== 'hyp_panic') throw new Error(`unwindStepArb drew ${s.call}`);
  return s.args;
};
const mode = fc.constantFrom<UnwindMode>('protected', 'nonprotected');
const pageSize = fc.constantFrom(4096, 4096, 16384, 65536);
const seed = fc.nat(0xffffffff);

describe('nVHE stack unwinder', () => {
  test('the unwind stops within its bound and reads nothing outside the two stacks', () => {
    assertTraced(
      unwindStepArb,
      (s, record) => {
        record(s);
        const args = argsOf(s);
        const run = runHyp(args, []);
        expect(run.violation).toBeNull();
        // The bound itself: one entry per frame record the stacks can hold, plus the starting pc.
        expect(countEntries(run.lines)).toBeLessThanOrEqual(maxRecords(args.page_size) + 1);
      },
      { seed: SEED, numRuns: 120 },
    );
  });

  test('EL2 saves at most N - 1 entries and a 0 after them', () => {
    let truncated = 0;
    assertTraced(
      unwindStepArb,
      (s, record) => {
        const args = { ...argsOf(s), mode: 'protected' as const };
        record({ call: 'hyp_panic', args });
        const sc = buildScenario(args);
        applyCorruptions(sc, ['hyp', 'overflow']);
        sc.cpu.hyp_panic_tail();
        const buf = targetBytes(sc, 'stacktrace');
        const N = sc.layout.stacktrace_entries;
        const words = Array.from({ length: N }, (_, i) => buf.getBigUint64(8 * i, true));
        const zero = words.indexOf(0n);
        expect(zero).toBeGreaterThanOrEqual(0);
        expect(zero).toBeLessThanOrEqual(N - 1);
        if (zero === N - 1) truncated++;
      },
      { seed: SEED, numRuns: 120 },
    );
    // The generators reach the edge: some traces fill all N - 1 entries.
    expect(truncated).toBeGreaterThan(0);
  });

  test('the host prints exactly what the model says (and every other check holds)', () => {
    assertTraced(
      unwindStepArb,
      (s, record) => {
        record(s);
        const out = checkUnwind(argsOf(s), []);
        expect(out.violation, out.violation ? `${out.violation.property}: ${out.violation.message}` : '').toBeNull();
      },
      { seed: SEED, numRuns: 200 },
    );
  });

  test('an uncorrupted overflow prints hyp_panic, hyp_panic_bad_stack, the recursion, then the chain down to __host_exit', () => {
    assertTraced(
      fc.tuple(mode, pageSize, seed),
      ([m, page_size, sd], record) => {
        const args: UnwindArgs = { scenario: 'recursive_death', mode: m, page_size, depth: 0, seed: sd, corrupt: [] };
        record({ call: 'hyp_panic', args });
        const run = runHyp(args, []);
        const names = traceFunctions(run.lines);
        const N = run.scenario.layout.stacktrace_entries;
        // recursive_death frames are 16 bytes: the page, less the chain's first frames, is all recursion.
        const chain = ['__kvm_vcpu_run', 'handle___kvm_vcpu_run', 'handle_trap', '__host_exit'];
        const recursion = names.length - 2 - chain.length;
        expect(names.slice(0, 2)).toEqual(['hyp_panic', 'hyp_panic_bad_stack']);
        expect(recursion).toBeGreaterThan(page_size / 16 - 16);
        expect(names.slice(2, 2 + recursion).every((n) => n === 'recursive_death')).toBe(true);
        expect(names.slice(2 + recursion)).toEqual(chain);
        expect(names.length).toBeLessThanOrEqual(m === 'protected' ? N - 1 : Infinity);
        expect(run.lines[0]).toMatch(/^nVHE hyp panic at: \[<[0-9a-f]{16}>\] __kvm_nvhe_recursive_death\+0x10\/0x34!$/);
      },
      { seed: SEED, numRuns: 30 },
    );
  });

  test('protected and non-protected modes print the same trace of uncorrupted stacks', () => {
    const scenario = fc.constantFrom('recursive_death', 'call_chain');
    const depth = fc.oneof(fc.nat(12), fc.constant(1 << 20));
    assertTraced(
      fc.tuple(scenario, pageSize, seed, depth),
      ([sc, page_size, sd, d], record) => {
        const args = { scenario: sc, page_size, seed: sd, depth: d, corrupt: [] };
        record({ call: 'hyp_panic', args: { ...args, mode: 'protected' } });
        record({ call: 'hyp_panic', args: { ...args, mode: 'nonprotected' } });
        const p = runHyp({ ...args, mode: 'protected' }, []);
        const np = runHyp({ ...args, mode: 'nonprotected' }, []);
        expect(np.lines).toEqual(p.lines);
        expect(traceFunctions(p.lines).at(-1)).toBe('__host_exit');
      },
      { seed: SEED, numRuns: 40 },
    );
  });
});
