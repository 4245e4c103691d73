// A deterministic post-pass over a failing trace's concrete steps. fast-check shrinks the abstract
// sequence, whose steps resolve against the live model, so deleting one changes what later ones become
// and the shrink can stop short. Here the steps are concrete: delete chunks of them (halves, quarters,
// ..., single steps; ddmin-style, repeated until nothing more goes), re-run each candidate from boot on
// the same Lockstep, and keep it when it still fails with the same property.
import type { Lockstep } from './lockstep';
import { runSteps } from './sequence';
import type { PropertyName } from './properties';
import { InputError, type TraceStep, type VmRef } from './vocabulary';

/** At most this many candidate re-runs per minimization, so a long trace cannot take forever. */
export const DEFAULT_MAX_RUNS = 500;

export interface MinimizeResult {
  /** The smallest failing steps found, without `expect`s, ending at the failing step. */
  readonly steps: TraceStep[];
  /** How many candidates were re-run. */
  readonly runs: number;
}

/** The step without its `expect`: while minimizing, only the property decides. */
function stripExpect(step: TraceStep): TraceStep {
  if (step.expect === undefined) return step;
  const { expect: _dropped, ...rest } = step;
  return rest as TraceStep;
}

/**
 * The step as it reads once steps `from`..`to - 1` (0-based) are deleted: a "$N" reference past the
 * hole moves down; null when it names a deleted step.
 */
function renumber(step: TraceStep, from: number, to: number): TraceStep | null {
  const vm = (step.args as { vm?: number | VmRef | null }).vm;
  if (vm === undefined || vm === null || typeof vm === 'number' || vm.ref - 1 < from) return step;
  if (vm.ref - 1 < to) return null;
  return { ...step, args: { ...step.args, vm: { ref: vm.ref - (to - from) } } } as TraceStep;
}

/** `steps` without steps `from`..`to - 1`, references renumbered; null if a kept step names a deleted one. */
export function deleteSteps(steps: readonly TraceStep[], from: number, to: number): TraceStep[] | null {
  const out: TraceStep[] = [];
  for (let i = 0; i < steps.length; i++) {
    if (i >= from && i < to) continue;
    const s = i < to ? steps[i] : renumber(steps[i], from, to);
    if (s === null) return null;
    out.push(s);
  }
  return out;
}

/** The steps up to the failure when `steps` fail with `property`, else null (a dangling handle too). */
function failsWith(ls: Lockstep, steps: readonly TraceStep[], property: PropertyName): TraceStep[] | null {
  try {
    const out = runSteps(ls, steps);
    return out.failure?.property === property ? out.steps : null;
  } catch (e) {
    // A reference to an __pkvm_init_vm that no longer returns a handle: not a trace worth keeping.
    if (e instanceof InputError) return null;
    throw e;
  }
}

/**
 * A short failing trace reachable from `steps` by deleting steps that still fails with `property`: no
 * single step of it can be deleted (unless `maxRuns` ran out first). Deterministic for the same steps
 * and Lockstep; `ls` is left in the state of the last candidate tried, so re-run the result to inspect it.
 */
export function minimize(ls: Lockstep, steps: readonly TraceStep[], property: PropertyName, maxRuns = DEFAULT_MAX_RUNS): MinimizeResult {
  // First cut whatever follows the failing step; a trace that does not fail so is returned as it is.
  const stripped = steps.map(stripExpect);
  let current = failsWith(ls, stripped, property);
  if (current === null) return { steps: stripped, runs: 1 };
  let runs = 1;
  let progress = true;
  while (progress && runs < maxRuns) {
    progress = false;
    // Chunks of half the steps, then a quarter, ..., then single steps.
    for (let chunk = Math.ceil(current.length / 2); chunk >= 1 && runs < maxRuns; chunk = chunk === 1 ? 0 : Math.ceil(chunk / 2)) {
      const pass = deletionPass(ls, current, chunk, property, maxRuns - runs);
      runs += pass.runs;
      if (pass.steps.length < current.length) progress = true;
      current = pass.steps;
    }
  }
  return { steps: current, runs };
}

/** One sweep from the front deleting `chunk` steps at a time, keeping every deletion that still fails. */
function deletionPass(ls: Lockstep, steps: TraceStep[], chunk: number, property: PropertyName, budget: number): MinimizeResult {
  let current = steps;
  let runs = 0;
  for (let i = 0; i < current.length && runs < budget; ) {
    const candidate = deleteSteps(current, i, Math.min(i + chunk, current.length));
    if (candidate === null) {
      i += chunk;
      continue;
    }
    runs++;
    const kept = failsWith(ls, candidate, property);
    if (kept) current = kept;
    else i += chunk;
  }
  return { steps: current, runs };
}
