// The seam between the lockstep runner and what it checks. A target executes calls and checks its
// own state against the model after each one; the runner owns the model, the comparison of
// results, coverage and `expect`s. Two targets implement it: the simulation in hyp/
// (checker/targets/sim.ts) and the real hypervisor under QEMU (checker/targets/kernel.ts).
import type { Call, CallName } from '../types/calls';
import type { MemoryRegion } from '../types/config';
import type { State } from '../model/state';
import type { Failure } from './suite-types';

export type TargetName = 'sim' | 'kernel';
export const TARGET_NAMES: readonly TargetName[] = ['sim', 'kernel'];

/** The pages, VMs and guest frames a call may change, computed from the model before it runs. */
export interface Footprint {
  readonly pages: readonly number[];
  readonly vms: readonly number[];
  readonly gfns?: readonly number[];
}

/** A failure the target found while executing a call (not a disagreement with the model). */
export class TargetFailure extends Error {
  constructor(readonly failure: Failure) {
    super(failure.message);
    this.name = 'TargetFailure';
  }
}

export interface Target {
  readonly name: TargetName;
  /** hyp's own memory at boot: the model starts it hyp-owned. */
  readonly reserved: readonly MemoryRegion[];
  /** Whether this target can execute the call at all. */
  supports(call: CallName): boolean;
  /** Back to the boot state before a sequence; `model` is the model's state now. */
  reset(model: State): void;
  /**
   * Runs one ownership call. The model already ran it: `want` is its result, `model` its state after
   * and `touched` what it may have changed. Returns the target's result; throws TargetFailure for a
   * failure of its own.
   */
  execute(call: Call, want: number, touched: Footprint, step: number, model: State): number;
  /** The target's checks after a call (the model is already past it); null when all hold. */
  check(model: State, call: Call, result: number, touched: Footprint, step: number): Failure | null;
  /** A failure the target noticed during step `step`, whatever ran it (e.g. a forbidden write). */
  pending(step: number): Failure | null;
  /** The whole check at the end of a sequence of `steps` steps. */
  finish(model: State, steps: number): Failure | null;
  /** Lines a replay prints before the steps (where the trace's pages live on this target). */
  notes(): string[];
  /** Lines about the step just run that a replay prints under it (a kernel's panic report). */
  report(): string[];
  /** How the target sees a page, for a replay's failure report (after `found`). */
  explain(pfn: number): { readonly found: string; readonly detail: string[] };
  /** Releases what the target holds (a machine to power off); it may be used again after. */
  close(): void;
}
