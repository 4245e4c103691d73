// The unwinder's two printed formats (upstream's and the v4/v5 series', hyp/stacktrace.ts) as a
// `hyp_panic` argument: how trace files carry it, that model and hyp are compared in both, and that a
// bug in the v5 lines only is invisible to upstream steps and caught on the generated ones.
import { describe, expect, test } from 'vitest';
import { fc } from '@fast-check/vitest';
import { findUnwinderBug } from '../checker/bugs/unwinder';
import { checkUnwind } from '../checker/unwinder/check';
import { unwindStepArb } from '../checker/unwinder/generators';
import { runHyp } from '../checker/unwinder/run';
import { decodeStep, encodeStep, formatCall, InputError, type TraceStep } from '../checker/vocabulary';
import { P } from '../checker/properties';
import type { UnwindArgs } from '../types/calls';

const BUG = findUnwinderBug('v5-footer-names-protected')!;
const panic = (args: Record<string, unknown>) => ({ call: 'hyp_panic', args: { scenario: 'call_chain', mode: 'nonprotected', depth: 3, ...args } });
const decoded = (args: Record<string, unknown>): UnwindArgs => decodeStep(panic(args), 0, []).args as UnwindArgs;

function rejection(args: Record<string, unknown>): string {
  try {
    decodeStep(panic(args), 0, []);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as Error).message;
  }
  throw new Error(`accepted: ${JSON.stringify(args)}`);
}

describe('hyp_panic format', () => {
  test('a trace step names it only when it is not upstream, and an older step decodes as it did', () => {
    expect(decoded({})).not.toHaveProperty('format');
    expect(decoded({ format: 'v5' }).format).toBe('v5');
    expect(decoded({ format: 'upstream' }).format).toBe('upstream');
    const v5: TraceStep = { call: 'hyp_panic', args: { ...decoded({}), format: 'v5' } };
    expect(encodeStep(v5).args).toMatchObject({ format: 'v5' });
    expect(formatCall(v5)).toBe('hyp_panic(scenario=call_chain, mode=nonprotected, depth=3, format=v5)');
    for (const format of [undefined, 'upstream'] as const) {
      const up: TraceStep = { call: 'hyp_panic', args: { ...decoded({}), ...(format ? { format } : {}) } };
      expect(JSON.stringify(encodeStep(up))).toBe('{"call":"hyp_panic","args":{"scenario":"call_chain","mode":"nonprotected","depth":3}}');
    }
  });

  test('a bad format is one line naming the step and the field', () => {
    for (const bad of ['v4', 'V5', '', 5, null, ['v5']]) {
      const m = rejection({ format: bad });
      expect(m).toBe(`step 1: field "args.format": expected one of upstream, v5, got ${JSON.stringify(bad)}`);
      expect(m).not.toMatch(/\n/);
    }
  });

  test('v5 steps print the series\' lines, and every check holds on them in both modes', () => {
    for (const mode of ['protected', 'nonprotected'] as const) {
      const args: UnwindArgs = { scenario: 'recursive_death', mode, page_size: 4096, depth: 2, seed: 5, corrupt: [], format: 'v5' };
      const lines = runHyp(args, []).lines;
      const who = mode === 'protected' ? 'Protected' : 'Non-protected';
      expect(lines[1]).toBe(`${who} nVHE HYP call trace:`);
      expect(lines.at(-1)).toBe(`---- End of ${who} nVHE HYP call trace ----`);
      // Uncorrupted: the model's lines, the trace's shape, and the other mode's trace all agree.
      expect(checkUnwind(args, []).violation).toBeNull();
      expect(runHyp({ ...args, format: undefined }, []).lines.slice(2, -1)).toEqual(lines.slice(2, -1));
    }
  });

  test('v5-footer-names-protected: invisible on upstream steps, caught in non-protected v5 whichever mode was drawn', () => {
    const steps = fc.sample(unwindStepArb, { seed: 0xf0f, numRuns: 150 }).map((s) => s.args as UnwindArgs);
    for (const args of steps) expect(checkUnwind({ ...args, format: 'upstream' }, [BUG]).violation).toBeNull();
    const base: UnwindArgs = { scenario: 'call_chain', mode: 'protected', page_size: 16384, depth: 4, seed: 9, corrupt: [], format: 'v5' };
    // Drawn in protected mode, uncorrupted: the other mode's run is checked against the model too.
    expect(checkUnwind(base, [BUG]).violation).toMatchObject({ property: P.hostOutputEqualsModel, message: expect.stringMatching(/^in nonprotected mode: line \d+: the model prints "---- End of Non-protected/) });
    expect(checkUnwind({ ...base, mode: 'nonprotected' }, [BUG]).violation?.property).toBe(P.hostOutputEqualsModel);
    expect(checkUnwind(base, []).violation).toBeNull();
  });
});
