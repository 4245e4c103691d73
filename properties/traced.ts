// Properties that leave a replayable trace when they fail. The suites of `npm test` check hyp through
// the lockstep runner (`runSuite`) or drive it themselves (the snapshot and unwinder properties); either
// way a failure writes its minimized trace into counterexamples/ (which CI uploads) and the test's
// message ends with the one-line replay command. A passing run writes nothing there.
import { fc } from '@fast-check/vitest';
import { traceReport } from '../checker/counterexample';
import type { TraceContext } from '../checker/counterexample';
import { saveFailingSteps } from '../checker/suites';
import type { SuiteResult } from '../checker/suite-types';
import { replayCommandLine } from '../checker/trace/file';
import type { TraceStep } from '../checker/vocabulary';
import { DEFAULT_CONFIG } from '../types/config';
import { SEED } from './seed';

/** Where the suite's failures go: the workspace's counterexamples/, as `pkvm-check run`'s do. */
export const TRACE_DIR = 'counterexamples';

/** A failed `runSuite` result as a test message: the property, the step, the trace and its replay. */
export function suiteFailure(r: SuiteResult): string {
  if (r.failure === null) return '';
  const head = `${r.name}: property ${r.failure.property} failed at step ${r.failure.step}: ${r.failure.message}`;
  if (r.counterexample !== null) return `${head}\ncounterexample (${r.counterexampleSteps} steps): ${r.counterexample}\nreplay: ${replayCommandLine(r.counterexample, null)}`;
  return `${head}\n${r.counterexampleProblem ?? 'no counterexample'}${r.counterexampleText ? `; the trace:\n${r.counterexampleText}` : ''}`;
}

/**
 * fc.assert, plus a trace: `body` checks one value and passes every call it makes to `record`. On a
 * failure the shrunk value is run again to collect its calls, which are saved as a trace, and the
 * error carries the property the lockstep runner finds, the replay command and fast-check's report.
 * `ctx` says where the trace goes and with which bug (the correct code, into counterexamples/).
 */
export function assertTraced<T>(
  arb: fc.Arbitrary<T>,
  body: (value: T, record: (step: TraceStep) => void) => void,
  params: fc.Parameters<[T]>,
  ctx: TraceContext = { config: DEFAULT_CONFIG, inject: null, seed: SEED, outDir: TRACE_DIR },
): void {
  let steps: TraceStep[] | null = null;
  const record = (step: TraceStep): void => void steps?.push(step);
  const out = fc.check(
    fc.property(arb, (v) => body(v, record)),
    params,
  );
  if (!out.failed || out.counterexample === null) return;
  steps = [];
  try {
    body(out.counterexample[0], record);
  } catch {
    // The failure fast-check already reported; this run only collects the calls.
  }
  const saved = saveFailingSteps(steps, ctx);
  const trace =
    typeof saved === 'string'
      ? saved
      : `lockstep: property ${saved.failure.property} failed at step ${saved.failure.step}: ${saved.failure.message}\n${traceReport(saved, ctx.inject)}`;
  throw new Error(`${trace}\n\n${fc.defaultReportMessage(out) ?? 'property failed'}`);
}

// A runSuite test hands its result to the summary reporter through the test's metadata.
declare module 'vitest' {
  interface TaskMeta {
    suiteResult?: SuiteResult;
  }
}
