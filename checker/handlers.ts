// Calls that are checked by their own area (the snapshot, the unwinder) plug into the lockstep
// runner through this interface: they run the call on both sides and report the result.
import type { Call } from '../types/calls';
import type { Failure } from './suite-types';
import type { Lockstep } from './lockstep';

export interface CallHandler {
  run(ls: Lockstep, call: Call, step: number): { readonly result: number; readonly failure: Failure | null };
}
