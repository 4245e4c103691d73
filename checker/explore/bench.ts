// Explorer throughput for `npm run bench`: transitions per second exploring the model alone and
// model + hyp in lockstep, and the heap each stored state costs. Measured on fixed configurations,
// so the numbers compare across commits.
import type { MachineConfig } from '../../types/config';
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

/** Transitions per second of the faster of two runs, after a warm-up run (JIT). */
function bestRate(o: ExploreOptions): { perSecond: number; bytesPerState: number } {
  explore(o);
  let best = 0;
  let bytesPerState = 0;
  for (let i = 0; i < 2; i++) {
    const r = explore(o);
    if (!r.ok) throw new Error(`bench: the exploration failed: ${r.failure?.message}`);
    best = Math.max(best, rate(r.transitions, r.durationMs));
    bytesPerState = r.bytesPerState;
  }
  return { perSecond: best, bytesPerState };
}

/** `config` (a version other than the default, from `bench --kernel`) replaces the default machine. */
export function benchExplore(config?: MachineConfig): ExploreBench {
  const on = (o: ExploreOptions): ExploreOptions => (config ? { ...o, config } : o);
  const model = bestRate(on(MODEL_BENCH));
  const lockstep = bestRate(on(LOCKSTEP_BENCH));
  return { modelOnlyTransitionsPerSecond: model.perSecond, lockstepTransitionsPerSecond: lockstep.perSecond, bytesPerState: model.bytesPerState };
}
