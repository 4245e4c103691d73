// Counterexamples of the suite itself (issue 12): a failing property writes a minimized trace that
// replays (checked in a fresh process first), its message carries the replay command, a trace that
// does not fail again is reported as flaky instead of saved, and a disk that refuses the trace does
// not lose it. Temporary files of the run go to one folder, removed at the end.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { fc } from '@fast-check/vitest';
import { freshProcessProblem, saveTrace } from '../checker/counterexample';
import { makeLockstep, runSuite } from '../checker/suites';
import { parseTrace, readTrace } from '../checker/trace/file';
import { DEFAULT_CONFIG } from '../types/config';
import { assertTraced } from './traced';

const tmp = () => mkdtempSync(join(tmpdir(), 'pkvm-traces-'));
const replay = (file: string) => spawnSync(process.execPath, [join(process.cwd(), 'bin/pkvm-check.js'), 'replay', file], { encoding: 'utf8' }).status;
const SAVED = readTrace('counterexamples/state-agrees-1d621aab36.json');

/**
 * A property that runs the saved trace's calls with its bug and finds hyp wrong; the trace is then
 * checked on the lockstep runner with `inject`.
 */
function failing(inject: string | null, outDir: string): string {
  try {
    assertTraced(
      fc.constant(SAVED.steps),
      (steps, record) => {
        const ls = makeLockstep(SAVED.inject);
        ls.reset();
        steps.forEach((s, i) => {
          record(s);
          expect(ls.step(s, i)).toBeNull();
        });
      },
      { numRuns: 1 },
      { config: DEFAULT_CONFIG, inject, seed: 1, outDir },
    );
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('the property passed');
}

describe('a failing property leaves a replayable trace', () => {
  test('the trace is written, replays failing, and the message names the property and the replay command', () => {
    const dir = tmp();
    const message = failing('block-not-split', dir);
    const [file] = readdirSync(dir);
    expect(file).toMatch(/^state-agrees-[0-9a-f]{10}\.json$/);
    expect(message.split('\n').slice(0, 3)).toEqual([
      expect.stringMatching(/^lockstep: property state-agrees failed at step 2: pfn 0x404bf/),
      `counterexample (2 steps): ${join(dir, file)}`,
      `replay: npx pkvm-check replay ${join(dir, file)} --inject block-not-split`,
    ]);
    expect(replay(join(dir, file))).toBe(1);
  });

  test('calls the lockstep runner finds nothing wrong with: said so, nothing written', () => {
    const dir = tmp();
    expect(failing(null, dir).split('\n')[0]).toBe('no trace: its 2 calls pass every check of the lockstep runner');
    expect(readdirSync(dir)).toEqual([]);
  });

  test('a trace that replays clean in a fresh process is reported as flaky, not saved', () => {
    const dir = tmp();
    const clean = { ...SAVED, inject: null };
    expect(freshProcessProblem(SAVED)).toBeNull();
    expect(freshProcessProblem(clean)).toBe('replayed in a fresh process it exited 0 (clean)');
    expect(saveTrace(clean, dir)).toEqual({ path: null, problem: 'flaky: the trace was not saved, replayed in a fresh process it exited 0 (clean)' });
    expect(readdirSync(dir)).toEqual([]);
  });

  test('a failing run whose output folder refuses the trace keeps its text to print', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'file'), 'x');
    const r = runSuite('ownership', { runs: 200, seed: 42, maxSteps: 80, inject: 'block-not-split', outDir: join(dir, 'file') });
    expect(r.ok).toBe(false);
    expect(r.counterexample).toBeNull();
    expect(r.counterexampleProblem).toMatch(/^cannot write the trace into .*file \((ENOTDIR|EEXIST)\)$/);
    expect(parseTrace(r.counterexampleText ?? '', 'printed').steps).toHaveLength(r.counterexampleSteps ?? -1);
    expect(existsSync(join(dir, 'counterexamples'))).toBe(false);
  });

  test("the suite's temporary files live in one folder that the run removes", () => {
    expect(tmpdir()).toMatch(/\/pkvm-check-test-[^/]+$/);
  });
});
