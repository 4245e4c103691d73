// The (call, result) coverage table in a fixed order, so reports are byte-identical across runs:
// calls in vocabulary order (unknown names after, alphabetically), results with 0 first, then other
// successes (handles), then errors by name.
import type { Coverage } from '../suite-types';
import { CALL_NAMES } from '../vocabulary';

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function callRank(call: string): number {
  const i = (CALL_NAMES as readonly string[]).indexOf(call);
  return i < 0 ? CALL_NAMES.length : i;
}

const resultRank = (result: string): number => (result === '0' ? 0 : result.startsWith('-') ? 2 : 1);

export const compareCalls = (a: string, b: string): number => callRank(a) - callRank(b) || byText(a, b);
export const compareResults = (a: string, b: string): number => resultRank(a) - resultRank(b) || byText(a, b);

/** A copy of `c` whose keys are in report order (JSON.stringify then prints them in that order). */
export function sortCoverage(c: Coverage): Coverage {
  const out: Coverage = {};
  for (const call of Object.keys(c).sort(compareCalls)) {
    const row: Record<string, number> = {};
    for (const result of Object.keys(c[call]).sort(compareResults)) row[result] = c[call][result];
    out[call] = row;
  }
  return out;
}

/** Every result that some call returned: the columns of the coverage matrix. */
export function resultColumns(c: Coverage): string[] {
  return [...new Set(Object.values(c).flatMap((row) => Object.keys(row)))].sort(compareResults);
}
