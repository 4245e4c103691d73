// What the unwinder generators produce, measured: every corruption kind, overflows, chains that fill
// the stack exactly, all page sizes and modes, and unwinds that end by each of the rules.
import { describe, expect, test } from 'vitest';
import { fc } from '@fast-check/vitest';
import { CORRUPTION_KINDS } from '../checker/unwinder/corruptions';
import { FILL_DEPTH, unwindCaseArb, type UnwindCase } from '../checker/unwinder/generators';
import { modelSpec } from '../checker/unwinder/model-spec';
import { runHyp } from '../checker/unwinder/run';
import { admitted } from '../model/unwind';
import type { UnwindArgs } from '../types/calls';

const SAMPLES = 1000;
const OUTCOMES = 200;
let drawn: readonly UnwindCase[] | null = null;
/** The sample both tests measure, drawn once. */
const cases = (): readonly UnwindCase[] => (drawn ??= fc.sample(unwindCaseArb, { seed: 0x9e11, numRuns: SAMPLES }));
const argsOf = (c: UnwindCase): UnwindArgs => c.step.args as UnwindArgs;

const tally = <T extends string>(keys: readonly T[]): Record<T, number> => Object.fromEntries(keys.map((k) => [k, 0])) as Record<T, number>;

describe('unwinder generators', () => {
  test('draw every corruption kind, overflows, exact fills, every page size and mode, regularly', () => {
    const kinds = tally([...CORRUPTION_KINDS, 'full-ladder', 'none']);
    const shape = tally(['overflow', 'call_chain', 'fills-stack', 'protected', 'nonprotected', '4096', '16384', '65536']);
    for (const c of cases()) {
      const a = argsOf(c);
      for (const k of new Set(c.kinds)) kinds[k]++;
      if (c.kinds.length === 0) kinds.none++;
      shape[a.scenario === 'recursive_death' ? 'overflow' : 'call_chain']++;
      if (a.scenario === 'call_chain' && a.depth === FILL_DEPTH) shape['fills-stack']++;
      shape[a.mode]++;
      shape[String(a.page_size) as '4096']++;
    }
    console.info(`unwinder generator, ${SAMPLES} steps: ${JSON.stringify({ ...kinds, ...shape })}`);
    for (const [k, n] of Object.entries(kinds)) expect(n, k).toBeGreaterThanOrEqual(k.startsWith('buffer') ? 20 : 40);
    expect(shape.overflow).toBeGreaterThanOrEqual(300);
    expect(shape['fills-stack']).toBeGreaterThanOrEqual(100);
    for (const k of ['protected', 'nonprotected', '4096', '16384', '65536'] as const) expect(shape[k], k).toBeGreaterThanOrEqual(50);
  });

  test('unwinds end by every rule, and some reach the N - 1 entries the buffer holds', () => {
    const ends = tally(['misaligned', 'off-stack', 'stack-left', 'consumed', 'N-1 entries']);
    for (const c of cases().slice(0, OUTCOMES)) {
      const run = runHyp(argsOf(c), []);
      if (!run.exit) throw new Error(`no panic: ${run.violation?.message}`);
      const { pcs, stop } = admitted(modelSpec(run, run.exit, 'upstream'));
      ends[stop]++;
      if (pcs.length >= run.scenario.layout.stacktrace_entries - 1) ends['N-1 entries']++;
    }
    console.info(`unwinder outcomes, ${OUTCOMES} steps: ${JSON.stringify(ends)}`);
    for (const [k, n] of Object.entries(ends)) expect(n, k).toBeGreaterThanOrEqual(6);
  });
});
