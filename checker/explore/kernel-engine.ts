// The explorer on the real kernel. The kernel cannot roll back, so every transition replays its
// whole path from boot: the engine keeps the path, and a step runs it as one sequence on a lockstep
// runner of its own (the undo of the previous sequence and its check, then the path's calls and the
// end check, pipelined into two round trips). The explorer's model is kept here with the model
// alone, as in ModelEngine; any disagreement of the kernel with it is a failure of the step.
import type { MachineConfig } from '../../types/config';
import { execModel, initialState, type State } from '../../model';
import { Lockstep } from '../lockstep';
import { runSteps } from '../sequence';
import type { Failure } from '../suite-types';
import { KernelTarget } from '../targets/kernel';
import { resolveStep, type TraceStep } from '../vocabulary';
import type { Engine } from './engine';

const NO_RESULTS: readonly number[] = [];

export class KernelEngine implements Engine {
  model: State;
  private readonly ls: Lockstep;
  private readonly target: KernelTarget;
  /** The calls from boot to the state the explorer is at. */
  private readonly path: TraceStep[] = [];

  constructor(
    private readonly config: MachineConfig,
    imageDir: string,
  ) {
    this.target = new KernelTarget(config, { imageDir });
    this.ls = new Lockstep(config, this.target);
    this.model = initialState(config, this.target.reserved);
  }

  reset(): void {
    this.model = initialState(this.config, this.target.reserved);
    this.path.length = 0;
  }

  step(ts: TraceStep, index: number): { result: number; failure: Failure | null } {
    this.path.length = index;
    this.path.push(ts);
    const result = execModel(this.model, resolveStep(ts, NO_RESULTS));
    return { result, failure: runSteps(this.ls, this.path).failure };
  }

  mark(): number {
    return this.path.length;
  }

  undo(_mark: number, depth: number): void {
    this.path.length = depth;
  }

  /** Every step already ended with the whole end-of-sequence check. */
  finish(): Failure | null {
    return null;
  }

  close(): void {
    this.ls.close();
  }
}
