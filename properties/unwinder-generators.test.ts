// What the unwinder generators produce, measured: every corruption kind, overflows, chains that fill
// the stack exactly, all page sizes and modes, each in both printed formats, and unwinds that end by
// each of the rules.
import { describe, expect, test } from 'vitest';
import { fc } from '@fast-check/vitest';
import { CORRUPTION_KINDS } from '../checker/unwinder/corruptions';
import { FILL_DEPTH, unwindCaseArb, type UnwindCase } from '../checker/unwinder/generators';
import { modelSpec } from '../checker/unwinder/model-spec';
import { runHyp } from '../checker/unwinder/run';
import { admitted } from '../model/unwind';
import type { UnwindArgs } from '../types/calls';

const SAMPLES = 1000;
/** The format test's sample: the first SAMPLES of it are the other tests'. */
const FORMAT_SAMPLES = 2000;
const OUTCOMES = 200;
let drawn: readonly UnwindCase[] | null = null;
/** The sample the tests measure, drawn once (fast-check draws each case from its own seed: a prefix is the smaller sample). */
const allCases = (): readonly UnwindCase[] => (drawn ??= fc.sample(unwindCaseArb, { seed: 0x9e11, numRuns: FORMAT_SAMPLES }));
const cases = (): readonly UnwindCase[] => allCases().slice(0, SAMPLES);
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

  test('draw every format with every mode and page size: upstream left absent, v5 in about one case in three', () => {
    const cells = new Map<string, number>();
    for (const format of ['upstream', 'v5']) for (const mode of ['protected', 'nonprotected']) for (const size of [4096, 16384, 65536]) cells.set(`${format}/${mode}/${size}`, 0);
    let v5 = 0;
    for (const c of allCases()) {
      const a = argsOf(c);
      // A trace file names the format only when it is not the default; the generator does the same.
      expect(a.format === undefined || a.format === 'v5', JSON.stringify(a.format)).toBe(true);
      const key = `${a.format ?? 'upstream'}/${a.mode}/${a.page_size}`;
      cells.set(key, cells.get(key)! + 1);
      if (a.format === 'v5') v5++;
    }
    console.info(`unwinder formats, ${FORMAT_SAMPLES} steps: ${JSON.stringify(Object.fromEntries(cells))}`);
    expect(cells.size).toBe(12);
    for (const [k, n] of cells) expect(n, k).toBeGreaterThanOrEqual(10);
    expect(v5).toBeGreaterThanOrEqual(FORMAT_SAMPLES / 4);
    expect(v5).toBeLessThanOrEqual(FORMAT_SAMPLES / 2);
  });

  test('unwinds end by every rule, and some reach the N - 1 entries the buffer holds', () => {
    const ends = tally(['misaligned', 'off-stack', 'stack-left', 'consumed', 'N-1 entries']);
    for (const c of cases().slice(0, OUTCOMES)) {
      const run = runHyp(argsOf(c), []);
      if (!run.exit) throw new Error(`no panic: ${run.violation?.message}`);
      const { pcs, stop } = admitted(modelSpec(run, run.exit));
      ends[stop]++;
      if (pcs.length >= run.scenario.layout.stacktrace_entries - 1) ends['N-1 entries']++;
    }
    console.info(`unwinder outcomes, ${OUTCOMES} steps: ${JSON.stringify(ends)}`);
    for (const [k, n] of Object.entries(ends)) expect(n, k).toBeGreaterThanOrEqual(6);
  });
});
