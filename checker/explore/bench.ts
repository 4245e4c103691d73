// Explorer throughput for `npm run bench`: transitions per second exploring the model alone and
// model + hyp in lockstep, and the heap each stored state costs. Measured on fixed configurations,
// so the numbers compare across commits.
import { explore, type ExploreOptions } from './bfs';

export interface ExploreBench {
  readonly modelOnlyTransitionsPerSecond: number;
  readonly lockstepTransitionsPerSecond: number;
  /** What the explorer stores per state (hash slots + columns); heap deltas are too noisy to report. */
  readonly bytesPerState: number;
}

/** Model alone, to the fixpoint: 2 pages, 2 VMs with a guest frame each, 1 pin (18,135 states, 877,370 transitions). */
export const MODEL_BENCH: ExploreOptions = { pages: 2, vms: 2, gfns: 1, maxPins: 1, depth: null, symmetry: false, modelOnly: true };
/** Lockstep, to the fixpoint: the default configuration of `pkvm-check explore` (1,551 states, 70,593 transitions). */
export const LOCKSTEP_BENCH: ExploreOptions = { pages: 2, vms: 1, gfns: 2, maxPins: 2, depth: null, symmetry: true, modelOnly: false };

const rate = (n: number, ms: number) => Math.round(n / (ms / 1000));

export function benchExplore(): ExploreBench {
  explore({ ...MODEL_BENCH, depth: 4 }); // warm-up (JIT)
  const model = explore(MODEL_BENCH);
  if (!model.ok) throw new Error(`bench: the model-only exploration failed: ${model.failure?.message}`);
  explore({ ...LOCKSTEP_BENCH, depth: 4 }); // warm-up
  const lockstep = explore(LOCKSTEP_BENCH);
  if (!lockstep.ok) throw new Error(`bench: the lockstep exploration failed: ${lockstep.failure?.message}`);
  return {
    modelOnlyTransitionsPerSecond: rate(model.transitions, model.durationMs),
    lockstepTransitionsPerSecond: rate(lockstep.transitions, lockstep.durationMs),
    bytesPerState: model.bytesPerState,
  };
}
