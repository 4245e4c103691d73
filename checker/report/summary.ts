// What a run reports: the `--json` object of `run` (CONTRACT.md) and the files in reports/
// (summary.json, summary.md). Same summary, same bytes: suites and coverage are put in a fixed order,
// and only durations vary between two runs with the same seed.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-write';
import { InputError } from '../vocabulary';
import type { SuiteResult } from '../suite-types';
import { replayCommandLine } from '../trace/file';
import { sortCoverage } from './coverage';
import { summaryMarkdown } from './markdown';
import { orderedSuites, reproduceCommands, type RunSummary } from './run-summary';

export type { RunSummary };

export const SUMMARY_FORMAT = 'pkvm-check/summary@1';

function suiteJson(r: SuiteResult): Record<string, unknown> {
  return {
    name: r.name,
    runs: r.runs,
    calls: r.calls,
    ok: r.ok,
    counterexample: r.counterexample,
    failure: r.failure && { property: r.failure.property, step: r.failure.step, message: r.failure.message },
    seed: r.seed,
    counterexampleSteps: r.counterexampleSteps ?? null,
    coverage: sortCoverage(r.coverage),
  };
}

/** The `--json` output of `run`: CONTRACT's fields, plus per suite `seed`, `counterexampleSteps`, `coverage`. */
export function runJson(s: RunSummary): object {
  return {
    ok: s.ok,
    seed: s.seed,
    inject: s.inject,
    suites: orderedSuites(s).map(suiteJson),
    calls: s.calls,
    durationMs: Math.round(s.durationMs),
  };
}

/** reports/summary.json: the `--json` object, plus per suite its result, paths, replay command and duration. */
export function summaryJson(s: RunSummary): object {
  return {
    format: SUMMARY_FORMAT,
    ...runJson(s),
    suites: orderedSuites(s).map((r) => ({
      ...suiteJson(r),
      result: r.incomplete ? 'interrupted' : r.ok ? 'pass' : 'fail',
      counterexamples: r.counterexample === null ? [] : [r.counterexample],
      replay: r.counterexample === null ? null : replayCommandLine(r.counterexample, s.inject),
      durationMs: Math.round(r.durationMs),
    })),
    reproduce: reproduceCommands(s),
    interrupted: s.interrupted ?? null,
    failedTests: s.failedTests ?? [],
  };
}

/** `f()`, with a file system error turned into one line naming `what` and the error code. */
function io<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new InputError(`${what} (${err.code ?? err.message.split('\n')[0]})`);
  }
}

/**
 * Writes `summary.json` and `summary.md` into `dir` (created if needed), each atomically, and returns
 * their paths. When `GITHUB_STEP_SUMMARY` names a file (GitHub Actions sets it), the Markdown is also
 * appended there, so it shows on the workflow run's page; that path is not returned. A file that
 * cannot be written is an InputError of one line naming it.
 */
export function writeReports(dir: string, s: RunSummary): string[] {
  const json = join(dir, 'summary.json');
  const md = join(dir, 'summary.md');
  const markdown = summaryMarkdown(s);
  io(`cannot write ${json}`, () => writeFileAtomic(json, `${JSON.stringify(summaryJson(s), null, 2)}\n`));
  io(`cannot write ${md}`, () => writeFileAtomic(md, markdown));
  const stepSummary = process.env.GITHUB_STEP_SUMMARY;
  if (stepSummary) io(`GITHUB_STEP_SUMMARY: cannot append to ${stepSummary}`, () => appendFileSync(stepSummary, `${markdown}\n`));
  return [json, md];
}
