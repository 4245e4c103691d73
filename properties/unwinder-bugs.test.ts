// Each known unwinder bug, injected, is caught by checkUnwind on generated steps, and by the
// property it breaks.
import { describe, expect, test } from 'vitest';
import { fc } from '@fast-check/vitest';
import { UNWINDER_BUGS } from '../checker/bugs/unwinder';
import { checkUnwind } from '../checker/unwinder/check';
import { scenarioFacts } from '../checker/unwinder/corruptions';
import { countEntries, maxRecords, runHyp } from '../checker/unwinder/run';
import { unwindStepArb } from '../checker/unwinder/generators';
import { P, type PropertyName } from '../checker/properties';

/** Which properties each bug may break first (a looping unwind hits its budget, or prints too much). */
const CAUGHT_BY: Readonly<Record<string, readonly PropertyName[]>> = {
  'unwind-no-stacks-done': [P.unwindBounded, P.hostOutputEqualsModel],
  'unwind-no-monotonic-fp': [P.unwindBounded, P.hostOutputEqualsModel],
  'unwind-overlapping-records': [P.hostOutputEqualsModel],
  'stacktrace-no-terminator-slot': [P.stacktraceBufferTerminated],
  'symbolize-without-kaslr': [P.hostOutputEqualsModel],
  'host-reader-trusts-terminator': [P.hostReaderBounded],
  'v5-footer-names-protected': [P.hostOutputEqualsModel],
};

describe('known unwinder bugs', () => {
  test('the catalog is exactly the six historical defects and the v5 footer', () => {
    expect(UNWINDER_BUGS.map((b) => b.id).sort()).toEqual(Object.keys(CAUGHT_BY).sort());
    for (const b of UNWINDER_BUGS) {
      expect(b.suite).toBe('unwinder');
      expect(b.description).not.toMatch(/\n/);
    }
  });

  test.each(UNWINDER_BUGS.map((b) => [b.id, b] as const))('%s is caught on generated steps', (_id, bug) => {
    const property = fc.property(unwindStepArb, (s) => s.call !== 'hyp_panic' || checkUnwind(s.args, [bug]).violation === null);
    const out = fc.check(property, { seed: 0x5eed, numRuns: 400, endOnFailure: true });
    expect(out.failed).toBe(true);
    const step = out.counterexample?.[0];
    if (step?.call !== 'hyp_panic') throw new Error('no hyp_panic counterexample');
    const violation = checkUnwind(step.args, [bug]).violation;
    expect(CAUGHT_BY[bug.id]).toContain(violation?.property);
    // The same step passes on the correct implementation: the bug, not the step, is at fault.
    expect(checkUnwind(step.args, []).violation).toBeNull();
  });

  test('a cyclic record under unwind-no-monotonic-fp is stopped by the step budget, not a hang', () => {
    const base = { scenario: 'call_chain', mode: 'nonprotected' as const, page_size: 4096, depth: 6, seed: 3 };
    const r = scenarioFacts({ ...base, corrupt: [] }).records[2];
    const cycle = { stack: r.stack, offset: r.off, value: `0x${r.addr.toString(16)}` };
    const bug = UNWINDER_BUGS.find((b) => b.id === 'unwind-no-monotonic-fp')!;
    const run = runHyp({ ...base, corrupt: [cycle] }, [bug]);
    expect(run.violation?.property).toBe(P.unwindBounded);
    expect(countEntries(run.lines)).toBeLessThanOrEqual(maxRecords(4096) + 1);
    // The correct unwinder stops at the cycle: the record may not point at itself.
    expect(runHyp({ ...base, corrupt: [cycle] }, []).violation).toBeNull();
  });

  test('a record overlapping the one before it: the kernel refuses it, unwind-overlapping-records prints one more entry', () => {
    for (const mode of ['protected', 'nonprotected'] as const) {
      const base = { scenario: 'call_chain', mode, page_size: 4096, depth: 6, seed: 3 };
      const r = scenarioFacts({ ...base, corrupt: [] }).records[2];
      const overlap = { stack: r.stack, offset: r.off, value: `0x${(r.addr + 8n).toString(16)}` };
      const correct = runHyp({ ...base, corrupt: [overlap] }, []);
      expect(correct.violation).toBeNull();
      const bug = UNWINDER_BUGS.find((b) => b.id === 'unwind-overlapping-records')!;
      const buggy = checkUnwind({ ...base, corrupt: [overlap] }, [bug]);
      expect(buggy.violation?.property).toBe(P.hostOutputEqualsModel);
      expect(buggy.result).toBe(countEntries(correct.lines) + 1);
    }
  });
});
