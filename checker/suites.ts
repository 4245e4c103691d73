// The suites: which calls a sequence is made of, how abstract steps resolve, which calls have their
// own handlers. `runSuite` drives one with fast-check and writes the shrunk, then minimized,
// counterexample.
import fc from 'fast-check';
import { DEFAULT_CONFIG, type MachineConfig } from '../types/config';
import { hypBugsFor, unwinderBugsFor } from './bugs/catalog';
import { unwindHandler } from './unwinder/handler';
import { unwindStepArb } from './unwinder/generators';
import { snapshotHandler } from './snapshot/handler';
import { hostShape, kernelSnapshotHandler } from './snapshot/kernel';
import { resolveSnapshotStep, snapshotStepArb } from './snapshot/generators';
import { resolveShapeStep, shapeStepArb } from './snapshot/shapes';
import { OWNERSHIP_MIX, resolve, sequenceArb, stepArb, type AbstractStep } from './generators';
import { configFor, makeTarget, SIM, targetSupports, type TargetSpec } from './targets/spec';
import type { CallName } from '../types/calls';
import type { CallHandler } from './handlers';
import { saveCounterexample, type SavedCounterexample, type TraceContext } from './counterexample';
import { Lockstep } from './lockstep';
import { runSequence, runSteps, type Resolver } from './sequence';
import type { Coverage, Progress, SuiteName, SuiteOptions, SuiteResult } from './suite-types';
import { rotationParts } from './machines';
import type { TraceStep } from './vocabulary';
import { P } from './properties';

export interface SuiteDef {
  /**
   * What one step of a sequence is made of, given what the target can run (the real kernel runs
   * fewer calls than the simulation), and at most how many steps a sequence has.
   */
  readonly step: (supports: (call: CallName) => boolean) => fc.Arbitrary<AbstractStep>;
  readonly resolve: Resolver;
  /** The resolver for a given runner, when it depends on what the runner's target learnt. */
  readonly resolveOn?: (ls: Lockstep) => Resolver;
  readonly maxSteps?: number;
}

export const SUITES: Partial<Record<SuiteName, SuiteDef>> = {
  ownership: { step: (supports) => stepArb(OWNERSHIP_MIX.filter(([call]) => supports(call))), resolve },
  // Snapshots of host stage-2s of random shape: one step in three is a snapshot.
  snapshot: {
    step: () =>
      fc.oneof(
        { weight: 2, arbitrary: shapeStepArb.map((d): AbstractStep => ({ call: 'host_access', d })) },
        { weight: 1, arbitrary: snapshotStepArb(DEFAULT_CONFIG).map((d): AbstractStep => ({ call: '__pkvm_host_stage2_snapshot', d })) },
      ),
    resolve: (s, model, ctx) => (s.call === '__pkvm_host_stage2_snapshot' ? resolveSnapshotStep(s.d, model, ctx.config) : resolveShapeStep(s.d, model, ctx.config)),
    // On the kernel, memcaches cover the kernel's own table pages too.
    resolveOn: (ls) => (s, model, ctx) => (s.call === '__pkvm_host_stage2_snapshot' ? resolveSnapshotStep(s.d, model, ctx.config, hostShape(ls)) : resolveShapeStep(s.d, model, ctx.config)),
    maxSteps: 30,
  },
  // Unwinder scenarios are independent of the stage-2 state: short sequences of panics.
  unwinder: { step: () => unwindStepArb.map((t): AbstractStep => ({ call: 'hyp_panic', d: [], fixed: t })), resolve, maxSteps: 4 },
};

/**
 * A lockstep runner with `inject`'s bug (if any) in hyp or in the area that owns it, on the given
 * target (a kernel target has the bug built into its image already).
 */
export function makeLockstep(inject: string | null, config: MachineConfig = DEFAULT_CONFIG, target: TargetSpec = SIM): Lockstep {
  if (target.name !== 'sim') {
    const machine = configFor(target, config);
    return new Lockstep(machine, makeTarget(target, machine, []), { __pkvm_host_stage2_snapshot: kernelSnapshotHandler });
  }
  return new Lockstep(config, hypBugsFor(inject), handlersFor(inject));
}

/** The calls a suite cannot run on a target: a suite is available there only when this is empty. */
export function unsupportedCalls(name: SuiteName, target: TargetSpec | TargetSpec['name']): CallName[] {
  const spec: TargetSpec = typeof target === 'string' ? (target === 'sim' ? SIM : { name: 'kernel', imageDir: '' }) : target;
  const wanted: Record<SuiteName, readonly CallName[]> = {
    ownership: ['host_access'],
    snapshot: ['__pkvm_host_stage2_snapshot'],
    unwinder: ['hyp_panic'],
  };
  return wanted[name].filter((c) => !targetSupports(spec, c));
}

/** Every area's handlers, so any trace replays whatever calls it mixes. */
export function handlersFor(inject: string | null): Partial<Record<TraceStep['call'], CallHandler>> {
  return { hyp_panic: unwindHandler(unwinderBugsFor(inject)), __pkvm_host_stage2_snapshot: snapshotHandler };
}

/**
 * Saves the concrete steps a failing property ran (a vitest property that drives hyp itself) as a
 * trace: they are replayed on a fresh lockstep runner with `ctx.inject`, minimized and checked in a
 * fresh process. A string when the runner finds nothing wrong with them (the property checks
 * something the runner does not), so there is no trace to save.
 */
export function saveFailingSteps(steps: readonly TraceStep[], ctx: TraceContext): SavedCounterexample | string {
  const ls = makeLockstep(ctx.inject, ctx.config);
  const out = runSteps(ls, steps);
  if (!out.failure) return `no trace: its ${steps.length} calls pass every check of the lockstep runner`;
  return saveCounterexample(ls, out.steps, out.failure, ctx);
}

/**
 * Runs a suite's properties. With no `config` on the simulation, the ownership and snapshot suites
 * split their runs over the machines of the rotation (checker/machines.ts), stopping at the first
 * failure; the unwinder does not depend on memory, and a real kernel keeps one machine.
 */
export function runSuite(name: SuiteName, opts: SuiteOptions, config?: MachineConfig): SuiteResult {
  if (config !== undefined || (opts.target ?? SIM).name !== 'sim' || name === 'unwinder') return runOn(name, opts, config ?? DEFAULT_CONFIG);
  const started = performance.now();
  const done: SuiteResult[] = [];
  for (const part of rotationParts(opts.runs, opts.seed)) {
    const before = { runs: done.reduce((n, r) => n + r.runs, 0), calls: done.reduce((n, r) => n + r.calls, 0) };
    const onProgress = opts.onProgress;
    const partOpts: SuiteOptions = {
      ...opts,
      runs: part.runs,
      seed: part.seed,
      ...(part.machine.prefix ? { prefix: part.machine.prefix } : {}),
      ...(onProgress ? { onProgress: (p: Progress) => onProgress({ ...p, runsDone: before.runs + p.runsDone, runsTotal: opts.runs, calls: before.calls + p.calls }) } : {}),
    };
    const r = runOn(name, partOpts, part.machine.config);
    done.push(r);
    if (!r.ok) break;
  }
  return mergeParts(done, opts.seed, performance.now() - started);
}

/** One result for the parts of a rotated run: runs, calls and coverage added up; the failure is the last part's. */
function mergeParts(parts: readonly SuiteResult[], seed: number, durationMs: number): SuiteResult {
  const last = parts[parts.length - 1];
  const coverage: Coverage = {};
  for (const r of parts)
    for (const [call, row] of Object.entries(r.coverage)) {
      const into = (coverage[call] ??= {});
      for (const [res, n] of Object.entries(row)) into[res] = (into[res] ?? 0) + n;
    }
  return { ...last, runs: parts.reduce((n, r) => n + r.runs, 0), calls: parts.reduce((n, r) => n + r.calls, 0), coverage, seed, durationMs };
}

function runOn(name: SuiteName, opts: SuiteOptions, config: MachineConfig): SuiteResult {
  const def = SUITES[name];
  if (!def) throw new Error(`suite ${name} is not available`);
  const started = performance.now();
  const target = opts.target ?? SIM;
  const ls = makeLockstep(opts.inject, opts.kernel ? { ...config, kernel: opts.kernel } : config, target);
  try {
    return checkSuite(ls, def, name, opts, ls.config, target, started);
  } finally {
    ls.close();
  }
}

function checkSuite(ls: Lockstep, def: SuiteDef, name: SuiteName, opts: SuiteOptions, config: MachineConfig, target: TargetSpec, started: number): SuiteResult {
  let runsDone = 0;
  // Calls and coverage up to the first failing sequence (shrinking runs more, which they leave out).
  let callsBeforeFailure: number | null = null;
  let coverageBeforeFailure: Coverage | null = null;
  const resolveStep = def.resolveOn?.(ls) ?? def.resolve;
  // A step made concrete already (a prefix's, checker/capacity.ts) runs as it is in every suite.
  const resolve: Resolver = (s, model, ctx) => s.fixed ?? resolveStep(s, model, ctx);
  const random = sequenceArb(Math.min(opts.maxSteps, def.maxSteps ?? opts.maxSteps), def.step((call) => ls.target.supports(call)));
  const sequences = opts.prefix ? fc.tuple(opts.prefix(config), random).map(([p, s]) => [...p, ...s]) : random;
  const property = fc.property(sequences, (seq) => {
    const out = runSequence(ls, seq, resolve);
    if (out.failure && callsBeforeFailure === null) {
      callsBeforeFailure = ls.calls;
      coverageBeforeFailure = structuredClone(ls.coverage);
    }
    if (callsBeforeFailure === null) {
      runsDone++;
      opts.onProgress?.({ suite: name, runsDone, runsTotal: opts.runs, calls: ls.calls });
    }
    return out.failure === null;
  });
  const res = fc.check(property, { seed: opts.seed, numRuns: opts.runs });
  const calls = callsBeforeFailure ?? ls.calls;
  const base = { name, runs: res.numRuns, calls, seed: opts.seed, coverage: coverageBeforeFailure ?? ls.coverage };
  if (!res.failed || !res.counterexample) return { ...base, ok: true, counterexample: null, failure: null, durationMs: performance.now() - started };
  // fast-check shrank the abstract sequence; deleting concrete steps often shortens it further.
  const shrunk = runSequence(ls, res.counterexample[0], resolve);
  if (!shrunk.failure) {
    const failure = { property: P.flaky, step: 0, message: `the shrunk sequence passed when re-run: ${res.errorInstance ? String(res.errorInstance) : 'no error'}` };
    return { ...base, ok: false, counterexample: null, failure, durationMs: performance.now() - started };
  }
  const saved = saveCounterexample(ls, shrunk.steps, shrunk.failure, { config, inject: opts.inject, seed: opts.seed, outDir: opts.outDir, target });
  return {
    ...base,
    ok: false,
    counterexample: saved.path,
    failure: saved.failure,
    counterexampleSteps: saved.steps.length,
    ...(saved.problem === null ? {} : { counterexampleProblem: saved.problem, counterexampleText: saved.text }),
    durationMs: performance.now() - started,
  };
}
