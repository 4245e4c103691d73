// `pkvm-check run`: runs the suites' properties, writes counterexample traces and the reports.
import { relative } from 'node:path';
import { SUITES, runSuite } from '../suites';
import { SUITE_NAMES, type SuiteName, type SuiteResult } from '../suite-types';
import { writeReports, runJson } from '../report/summary';
import { replayCommandLine } from '../trace/file';
import { parseInject } from './inject';
import { progressReporter } from './progress';
import { intFlag, parseFlags, UsageError } from './usage';

export const DEFAULT_RUNS = 200;
export const DEFAULT_MAX_STEPS = 80;
export const DEFAULT_SEED = 42;

export async function runCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
    suite: { type: 'string' },
    runs: { type: 'string' },
    seed: { type: 'string' },
    'max-steps': { type: 'string' },
    inject: { type: 'string' },
    out: { type: 'string' },
    reports: { type: 'string' },
    json: { type: 'boolean' },
  });
  const suiteArg = values.suite ?? 'all';
  const available = SUITE_NAMES.filter((s) => SUITES[s]);
  if (suiteArg !== 'all' && !(SUITE_NAMES as readonly string[]).includes(suiteArg)) throw new UsageError(`--suite: expected ownership, snapshot, unwinder or all, got "${suiteArg}"`);
  if (suiteArg !== 'all' && !SUITES[suiteArg as SuiteName]) throw new UsageError(`--suite: "${suiteArg}" is not available in this build`);
  const inject = parseInject(values.inject, false) ?? null;
  const suites: SuiteName[] = suiteArg === 'all' ? available : [suiteArg as SuiteName];
  const opts = {
    runs: intFlag('runs', values.runs, DEFAULT_RUNS, 1, 10_000_000),
    seed: intFlag('seed', values.seed, DEFAULT_SEED, 0, 2 ** 31 - 1),
    maxSteps: intFlag('max-steps', values['max-steps'], DEFAULT_MAX_STEPS, 1, 100_000),
    inject,
    outDir: values.out ?? 'counterexamples',
  };
  const json = values.json === true;
  const progress = progressReporter(process.stderr, !json && process.stderr.isTTY === true);
  const started = performance.now();
  const results: SuiteResult[] = [];
  // The bug is injected into every suite's implementation; suites that never reach its code pass.
  for (const name of suites) results.push(runSuite(name, { ...opts, onProgress: (p) => progress.update(p) }));
  progress.done();
  const summary = {
    ok: results.every((r) => r.ok),
    seed: opts.seed,
    inject,
    suites: results,
    calls: results.reduce((n, r) => n + r.calls, 0),
    durationMs: performance.now() - started,
  };
  writeReports(values.reports ?? 'reports', summary);
  if (json) process.stdout.write(`${JSON.stringify(runJson(summary))}\n`);
  else for (const r of results) process.stdout.write(describe(r, inject));
  return summary.ok ? 0 : 1;
}

function describe(r: SuiteResult, inject: string | null): string {
  const head = `${r.name}: ${r.ok ? 'ok' : 'FAILED'}  ${r.runs} runs, ${r.calls} calls, seed ${r.seed}, ${(r.durationMs / 1000).toFixed(1)} s\n`;
  if (r.ok || !r.failure) return head;
  const path = r.counterexample ? relative(process.cwd(), r.counterexample) : null;
  return (
    head +
    `  property ${r.failure.property} failed at step ${r.failure.step}: ${r.failure.message}\n` +
    (path ? `  counterexample (${r.counterexampleSteps} steps): ${path}\n  replay: ${replayCommandLine(path, inject)}\n` : '')
  );
}
