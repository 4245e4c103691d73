// What the explorer runs each transition on: the model alone, or model and hyp in lockstep. Both
// can roll back to an earlier point cheaply: hyp through its memory journal (PhysMem.mark/undo,
// which covers every word and journaled cell of hyp's state), the model through the explorer's
// snapshots (see snapshot.ts).
import type { MachineConfig } from '../../types/config';
import { execModel, initialState, type State } from '../../model';
import { hypLayout } from '../../hyp/setup';
import { Lockstep } from '../lockstep';
import type { HypBug } from '../bugs/ownership';
import type { Failure } from '../suite-types';
import { resolveStep, type TraceStep } from '../vocabulary';

export interface Engine {
  readonly model: State;
  /** Back to boot. */
  reset(): void;
  /** Runs `ts` as step `index` (0-based); `result` is undefined when the step did not complete. */
  step(ts: TraceStep, index: number): { result: number | undefined; failure: Failure | null };
  /** A point in hyp's journal to come back to (0 for the model alone). */
  mark(): number;
  /** Rolls hyp back to `mark`, taken when `depth` steps had run. The model is restored by the caller. */
  undo(mark: number, depth: number): void;
  /** The full end-of-sequence check on the state reached after `depth` steps. */
  finish(): Failure | null;
}

/** The explorer's steps name VMs by handle, never by "$N", so no earlier results are needed. */
const NO_RESULTS: readonly number[] = [];

export class ModelEngine implements Engine {
  model: State;
  private readonly carveout;

  constructor(private readonly config: MachineConfig) {
    this.carveout = hypLayout(config).carveout;
    this.model = initialState(config, [this.carveout]);
  }

  reset(): void {
    this.model = initialState(this.config, [this.carveout]);
  }

  step(ts: TraceStep): { result: number; failure: null } {
    return { result: execModel(this.model, resolveStep(ts, NO_RESULTS)), failure: null };
  }

  mark(): number {
    return 0;
  }

  undo(): void {}

  finish(): null {
    return null;
  }
}

export class LockstepEngine implements Engine {
  readonly ls: Lockstep;

  constructor(config: MachineConfig, bugs: readonly HypBug[]) {
    this.ls = new Lockstep(config, bugs);
  }

  get model(): State {
    return this.ls.model;
  }

  reset(): void {
    this.ls.reset();
  }

  step(ts: TraceStep, index: number): { result: number | undefined; failure: Failure | null } {
    this.ls.results.length = index;
    const failure = this.ls.step(ts, index);
    return { result: this.ls.results[index], failure };
  }

  mark(): number {
    return this.ls.hyp.mem.mark();
  }

  undo(mark: number, depth: number): void {
    this.ls.hyp.mem.undo(mark);
    this.ls.results.length = depth;
  }

  finish(): Failure | null {
    return this.ls.finish();
  }
}
