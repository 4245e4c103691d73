// Runs one generated sequence through the lockstep runner: resolve each abstract step against the
// live model, execute it, check, and at the end check everything. Returns the concrete steps run
// (what a trace stores) and the first failure.
import type { Failure } from './suite-types';
import type { Lockstep } from './lockstep';
import { newContext, observe, type AbstractStep, type ResolveContext } from './generators';
import { InputError, type TraceStep } from './vocabulary';
import type { State } from '../model/state';
import { P } from './properties';

/** Turns an abstract step into a concrete one; each suite supplies its own. */
export type Resolver = (s: AbstractStep, model: State, ctx: ResolveContext) => TraceStep;

export interface SequenceOutcome {
  readonly steps: TraceStep[];
  readonly failure: Failure | null;
}

/** Runs concrete steps (a trace) from boot; used by replay and the regression gate. */
export function runSteps(ls: Lockstep, steps: readonly TraceStep[]): SequenceOutcome {
  ls.reset();
  for (let i = 0; i < steps.length; i++) {
    const failure = guarded(() => ls.step(steps[i], i), i + 1);
    if (failure) return { steps: steps.slice(0, i + 1), failure };
  }
  return { steps: [...steps], failure: guarded(() => ls.finish(), steps.length) };
}

export function runSequence(ls: Lockstep, seq: readonly AbstractStep[], resolve: Resolver): SequenceOutcome {
  ls.reset();
  const ctx = newContext(ls.config);
  const steps: TraceStep[] = [];
  for (let i = 0; i < seq.length; i++) {
    const step = resolve(seq[i], ls.model, ctx);
    steps.push(step);
    const failure = guarded(() => ls.step(step, i), i + 1);
    if (failure) return { steps, failure };
    observe(ctx, step, i, ls.results[i]);
  }
  return { steps, failure: guarded(() => ls.finish(), steps.length) };
}

/** An exception thrown by hyp (a bug can make it walk garbage) is a failure at that step, not a crash. */
function guarded(f: () => Failure | null, step: number): Failure | null {
  try {
    return f();
  } catch (e) {
    if (e instanceof InputError) throw e;
    return { property: P.noCrash, step, message: `hyp threw: ${(e as Error).message}` };
  }
}
