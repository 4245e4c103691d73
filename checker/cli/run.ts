// `pkvm-check run`: runs the suites' properties, writes counterexample traces and the reports. The
// suites run in a worker thread (run-worker.ts); this thread shows progress, and on SIGINT or SIGTERM
// stops the worker and writes the summary so far.
import { relative } from 'node:path';
import { Worker } from 'node:worker_threads';
import { SUITES } from '../suites';
import { SUITE_NAMES, type Progress, type SuiteName, type SuiteResult } from '../suite-types';
import { runCommandLine, type RunRequest } from '../report/run-summary';
import { writeReports, runJson, type RunSummary } from '../report/summary';
import { replayCommandLine } from '../trace/file';
import { InputError } from '../vocabulary';
import { parseInject } from './inject';
import { checkStepSummary, outputDir } from './out-dir';
import { progressReporter } from './progress';
import type { WorkerInput, WorkerMessage } from './run-worker';
import { intFlag, parseFlags, UsageError } from './usage';
import { parseKernelFlag, parseTarget, TARGET_FLAGS } from './target';
import type { KernelVersion } from '../../types/kernel';
import type { MachineConfig } from '../../types/config';
import { readConfigFile } from '../trace/file';
import { unsupportedCalls } from '../suites';
import { configFor } from '../targets/spec';

export const DEFAULT_RUNS = 200;
export const DEFAULT_MAX_STEPS = 80;
export const DEFAULT_SEED = 42;

/** Exit status after a signal, as a shell reports it: 128 + the signal's number. */
const SIGNAL_STATUS: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

const TSX_API = import.meta.resolve('tsx/esm/api');
const WORKER = new URL('./run-worker.ts', import.meta.url).href;

interface SuitesRun {
  readonly results: SuiteResult[];
  /** The signal that stopped the run, or null when every suite finished. */
  readonly interrupted: string | null;
}

/** Runs the suites in a worker, passing its progress on; resolves early on SIGINT or SIGTERM. */
function runInWorker(input: WorkerInput, onProgress: (p: Progress) => void): Promise<SuitesRun> {
  // The worker loads the TypeScript sources through tsx, as the launcher does.
  const worker = new Worker(`import(${JSON.stringify(TSX_API)}).then((m) => { m.register(); return import(${JSON.stringify(WORKER)}); })`, { eval: true, workerData: input });
  const results: SuiteResult[] = [];
  let last: Progress | null = null;
  let interrupted: string | null = null;
  const started = performance.now();
  return new Promise<SuitesRun>((resolve, reject) => {
    const onSignal = (signal: string): void => {
      interrupted = signal;
      void worker.terminate();
    };
    const signals = Object.keys(SIGNAL_STATUS).map((s) => [s, () => onSignal(s)] as const);
    for (const [s, f] of signals) process.once(s, f);
    const cleanup = (): void => {
      for (const [s, f] of signals) process.removeListener(s, f);
    };
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'progress') {
        last = m.p;
        onProgress(m.p);
      } else results.push(m.r);
    });
    worker.on('error', (e) => {
      cleanup();
      reject(e);
    });
    worker.on('exit', () => {
      cleanup();
      // The suite that was running when the signal came: what it had done so far.
      const partial = last !== null && !results.some((r) => r.name === last?.suite) ? [partialResult(last, input.opts.seed, performance.now() - started)] : [];
      resolve({ results: interrupted ? [...results, ...partial] : results, interrupted });
    });
  });
}

/** An interrupted suite: the runs and calls done before the signal; nothing failed in them. */
function partialResult(p: Progress, seed: number, durationMs: number): SuiteResult {
  return { name: p.suite, runs: p.runsDone, calls: p.calls, ok: true, counterexample: null, failure: null, seed, coverage: {}, durationMs, incomplete: true };
}

/** The flags, checked; nothing has been written yet when this throws. */
function parseRun(argv: string[]): { request: RunRequest; suites: SuiteName[]; outDir: string; reportsDir: string; json: boolean; config?: MachineConfig } {
  const { values } = parseFlags(argv, {
    suite: { type: 'string' },
    runs: { type: 'string' },
    seed: { type: 'string' },
    'max-steps': { type: 'string' },
    inject: { type: 'string' },
    out: { type: 'string' },
    reports: { type: 'string' },
    json: { type: 'boolean' },
    config: { type: 'string' },
    ...TARGET_FLAGS,
  });
  const suiteArg = values.suite ?? 'all';
  const available = SUITE_NAMES.filter((s) => SUITES[s]);
  if (suiteArg !== 'all' && !(SUITE_NAMES as readonly string[]).includes(suiteArg)) throw new UsageError(`--suite: expected ownership, snapshot, unwinder or all, got "${suiteArg}"`);
  if (suiteArg !== 'all' && !SUITES[suiteArg as SuiteName]) throw new UsageError(`--suite: "${suiteArg}" is not available in this build`);
  // On the kernel, `all` means the suites it can run; naming another is an error.
  const onKernel = (s: SuiteName): boolean => values.target !== 'kernel' || unsupportedCalls(s, 'kernel').length === 0;
  if (suiteArg !== 'all' && !onKernel(suiteArg as SuiteName)) throw new UsageError(`--suite ${suiteArg}: the kernel target does not run it yet (it runs the ownership suite)`);
  const suites: SuiteName[] = suiteArg === 'all' ? available.filter(onKernel) : [suiteArg as SuiteName];
  const bug = parseInject(values.inject, suites, suiteArg === 'all' ? 'run' : `--suite ${suiteArg}`);
  const request: RunRequest = {
    suite: suiteArg as SuiteName | 'all',
    runs: intFlag('runs', values.runs, DEFAULT_RUNS, 1, 10_000_000),
    maxSteps: intFlag('max-steps', values['max-steps'], DEFAULT_MAX_STEPS, 1, 100_000),
    seed: intFlag('seed', values.seed, DEFAULT_SEED, 0, 2 ** 31 - 1),
    inject: bug?.id ?? null,
  };
  // One machine for every sequence instead of the rotation (checker/machines.ts).
  const config = values.config === undefined ? undefined : readConfigFile(values.config);
  // A machine the kernel target cannot run (another version, a simulation-only pinLimit): one line now.
  if (config && values.target === 'kernel') {
    try {
      configFor({ name: 'kernel', imageDir: '' }, config);
    } catch (e) {
      throw e instanceof InputError ? new InputError(`${values.config}: ${e.message}`) : e;
    }
  }
  const outDir = outputDir('out', values.out, 'counterexamples');
  const reportsDir = outputDir('reports', values.reports, 'reports');
  checkStepSummary(process.env.GITHUB_STEP_SUMMARY);
  // Last, since it may build a kernel: every other flag was checked first.
  const kernel = parseKernelFlag(values);
  const target = parseTarget(values, request.inject);
  const file = values.config;
  return { request: { ...request, target, ...(kernel ? { kernel } : {}), ...(file !== undefined ? { config: file } : {}) }, suites, outDir, reportsDir, json: values.json === true, ...(config ? { config } : {}) };
}

export async function runCommand(argv: string[]): Promise<number> {
  const { request, suites, outDir, reportsDir, json, config } = parseRun(argv);
  const progress = progressReporter(process.stderr, !json && process.stderr.isTTY === true);
  const started = performance.now();
  const opts = { runs: request.runs, seed: request.seed, maxSteps: request.maxSteps, inject: request.inject, outDir, target: request.target, ...(request.kernel ? { kernel: request.kernel as KernelVersion } : {}) };
  // The bug is injected into every suite run; parseInject made sure one of them reaches its code.
  const { results, interrupted } = await runInWorker({ suites, opts, ...(config ? { config } : {}) }, (p) => progress.update(p));
  progress.done();
  const summary: RunSummary = {
    ok: interrupted === null && results.every((r) => r.ok),
    seed: request.seed,
    inject: request.inject,
    suites: results,
    calls: results.reduce((n, r) => n + r.calls, 0),
    durationMs: performance.now() - started,
    reproduce: [runCommandLine(request)],
    interrupted,
  };
  let reportError: string | null = null;
  try {
    writeReports(reportsDir, summary);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    reportError = e.message;
  }
  if (interrupted) {
    const runs = results.reduce((n, r) => n + r.runs, 0);
    process.stderr.write(
      `pkvm-check run: interrupted by ${interrupted} after ${runs} runs and ${summary.calls} calls (seed ${request.seed}); ${reportError ?? `summary so far in ${relative(process.cwd(), reportsDir) || '.'}/summary.md`}\n`,
    );
    return SIGNAL_STATUS[interrupted];
  }
  if (json) process.stdout.write(`${JSON.stringify(runJson(summary))}\n`);
  else for (const r of results) process.stdout.write(describe(r, request));
  // Whatever happened to the files, a trace that could not be written is not lost: it goes to stderr.
  for (const r of results) if (r.counterexampleProblem && json) process.stderr.write(`pkvm-check run: ${r.name}: ${r.counterexampleProblem}; the trace:\n${r.counterexampleText}`);
  if (reportError !== null) process.stderr.write(`pkvm-check run: ${reportError}\n`);
  if (!summary.ok) return 1;
  return reportError === null ? 0 : 2;
}

function describe(r: SuiteResult, { inject, target }: RunRequest): string {
  const head = `${r.name}: ${r.ok ? 'ok' : 'FAILED'}  ${r.runs} runs, ${r.calls} calls, seed ${r.seed}, ${(r.durationMs / 1000).toFixed(1)} s\n`;
  if (r.ok || !r.failure) return head;
  const path = r.counterexample ? relative(process.cwd(), r.counterexample) : null;
  const trace = path
    ? `  counterexample (${r.counterexampleSteps} steps): ${path}\n  replay: ${replayCommandLine(path, inject, target)}\n`
    : r.counterexampleProblem
      ? `  no counterexample written: ${r.counterexampleProblem}; the trace:\n${r.counterexampleText}`
      : '';
  return `${head}  property ${r.failure.property} failed at step ${r.failure.step}: ${r.failure.message}\n${trace}`;
}
