// Calls that are checked by their own area (the snapshot, the unwinder) plug into the lockstep
// runner through this interface: they run the call on both sides and report the result.
import type { Call } from '../types/calls';
import type { Failure } from './suite-types';
import type { Lockstep } from './lockstep';

export interface CallHandler {
  /** Runs the call on both sides: hyp's result, what the model says it should be, and any failure. */
  run(ls: Lockstep, call: Call, step: number): { readonly result: number; readonly modelResult: number; readonly failure: Failure | null };
}
