import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { gateProblems } from '../checker/regression';
import { replayTrace } from '../checker/replay';
import { readTrace } from '../checker/trace/file';

const DIR = 'counterexamples';
const files = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();

describe('regression gate over counterexamples/', () => {
  test('there is a starting regression set', () => {
    expect(files.length).toBeGreaterThanOrEqual(8);
  });

  test.each(files)('%s replays clean, and still fails with its bug', (f) => {
    expect(gateProblems(join(DIR, f), readTrace(join(DIR, f)))).toEqual([]);
  });

  test('the gate complains when a saved trace stops failing under its bug', () => {
    const f = join(DIR, files.find((x) => readTrace(join(DIR, x)).inject !== null)!);
    const trace = readTrace(f);
    // An implementation "without the bug": replaying with the bug swapped for the correct code.
    const bugless = (file: string, t: typeof trace, inject: string | null | undefined) => replayTrace(file, t, inject === undefined ? t.inject : null);
    const problems = gateProblems(f, trace, bugless);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(`no longer fails with bug ${trace.inject}`);
  });
});
