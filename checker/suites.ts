// The suites: which calls a sequence is made of, how abstract steps resolve, which calls have their
// own handlers. `runSuite` drives one with fast-check and writes the shrunk counterexample.
import fc from 'fast-check';
import { DEFAULT_CONFIG, type MachineConfig } from '../types/config';
import { hypBugsFor } from './bugs/catalog';
import { resolve, sequenceArb, stepArb, type AbstractStep } from './generators';
import type { CallHandler } from './handlers';
import { Lockstep } from './lockstep';
import { runSequence, type Resolver } from './sequence';
import type { SuiteName, SuiteOptions, SuiteResult } from './suite-types';
import { TRACE_FORMAT, writeTrace, type TraceFile } from './trace/file';
import type { TraceStep } from './vocabulary';

export interface SuiteDef {
  readonly step: fc.Arbitrary<AbstractStep>;
  readonly resolve: Resolver;
  readonly handlers: Partial<Record<TraceStep['call'], CallHandler>>;
}

export const SUITES: Partial<Record<SuiteName, SuiteDef>> = {
  ownership: { step: stepArb(), resolve, handlers: {} },
};

export function makeLockstep(name: SuiteName, inject: string | null, config: MachineConfig = DEFAULT_CONFIG): Lockstep {
  return new Lockstep(config, hypBugsFor(inject), allHandlers());
}

/** Every area's handlers, so any trace replays whatever calls it mixes. */
export function allHandlers(): Partial<Record<TraceStep['call'], CallHandler>> {
  return Object.assign({}, ...Object.values(SUITES).map((s) => s.handlers));
}

/** The concrete steps with `expect` set to what the model says each should return. */
export function withExpectations(steps: readonly TraceStep[], modelResults: readonly number[]): TraceStep[] {
  return steps.map((s, i) => {
    const want = modelResults[i];
    return want === undefined || s.call === '__pkvm_init_vm' || want > 0 ? s : { ...s, expect: want };
  });
}

export function runSuite(name: SuiteName, opts: SuiteOptions, config: MachineConfig = DEFAULT_CONFIG): SuiteResult {
  const def = SUITES[name];
  if (!def) throw new Error(`suite ${name} is not available`);
  const started = performance.now();
  const ls = makeLockstep(name, opts.inject, config);
  let runsDone = 0;
  let callsBeforeFailure: number | null = null;
  const property = fc.property(sequenceArb(opts.maxSteps, def.step), (seq) => {
    const out = runSequence(ls, seq, def.resolve);
    if (out.failure && callsBeforeFailure === null) callsBeforeFailure = ls.calls;
    if (callsBeforeFailure === null) {
      runsDone++;
      opts.onProgress?.({ suite: name, runsDone, runsTotal: opts.runs, calls: ls.calls });
    }
    return out.failure === null;
  });
  const res = fc.check(property, { seed: opts.seed, numRuns: opts.runs });
  const calls = callsBeforeFailure ?? ls.calls;
  const base = { name, runs: res.numRuns, calls, seed: opts.seed, coverage: ls.coverage };
  if (!res.failed || !res.counterexample) return { ...base, ok: true, counterexample: null, failure: null, durationMs: performance.now() - started };
  const out = runSequence(ls, res.counterexample[0], def.resolve);
  const failure = out.failure ?? { property: 'flaky', step: 0, message: `the shrunk sequence passed when re-run: ${res.errorInstance ? String(res.errorInstance) : 'no error'}` };
  const trace: TraceFile = { format: TRACE_FORMAT, config, inject: opts.inject, seed: opts.seed, steps: withExpectations(out.steps, ls.modelResults), failure };
  const path = writeTrace(opts.outDir, failure.property, trace);
  return { ...base, ok: false, counterexample: path, failure, counterexampleSteps: out.steps.length, durationMs: performance.now() - started };
}
