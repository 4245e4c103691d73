// Breadth-first exploration of every call sequence over the alphabet, model and hyp in lockstep.
//
// Memory: per state only its 53-bit hash (in an open-addressing table), its parent's index, the
// action that reached it and its depth: about 26 to 42 bytes (hash compaction, as SPIN's -DHC: a
// collision could merge two states, with probability about n^2 / 2^54). No copy of hyp or of the
// model is kept per state; the explorer holds one model snapshot per depth of the current path.
//
// Restoring hyp for an expansion: the explorer keeps the path to the state it is at, with a hyp
// journal mark and a model snapshot per depth. Going to the next state of the queue rolls back to the
// longest common prefix and replays the rest; siblings sit next to each other in BFS order, so this
// costs about one replayed call per expanded state on average, and at most O(depth). Each transition
// is then one call plus a journal undo (proportional to the words the call wrote).
//
// States are deduplicated on the model (abstract) state plus the one part of hyp's state the model
// does not determine: the host stage-2, which hyp builds lazily (a successful host access may map a
// block) and splits on ownership changes. For each relevant pfn the key holds the host stage-2 leaf
// for it (level; zero, valid or annotation), so a block mapped over a hot page is a different state
// from the same page unmapped. Other hyp detail (which pool page backs which table, MMIO mappings) is
// not in the key: two paths reaching states that differ only there are merged, and only the first
// is explored further. `abstractStates` counts the distinct model states alone.
import type { MachineConfig } from '../../types/config';
import { DEFAULT_CONFIG } from '../../types/config';
import type { CallName } from '../../types/calls';
import type { HypBug } from '../bugs/ownership';
import { resultName } from '../lockstep';
import type { Coverage, Failure } from '../suite-types';
import type { TraceStep } from '../vocabulary';
import { isValid, isZero, translate } from '../walk';
import { kvm_granule_pages } from '../../hyp/pgtable';
import type { State } from '../../model';
import { buildAlphabet, type Action, type GeometryFeature } from './alphabet';
import { Canonicalizer } from './canonical';
import { HashSet53 } from './hash-set';
import { LockstepEngine, ModelEngine, type Engine } from './engine';
import { KernelEngine } from './kernel-engine';
import { restoreModel, saveModel, type ModelSnapshot } from './snapshot';

export interface ExploreOptions {
  readonly config?: MachineConfig;
  /** Where the hot pages, VM slots and a shared block lie (alphabet.ts); default: none of the features. */
  readonly geometry?: readonly GeometryFeature[];
  readonly pages: number;
  readonly vms: number;
  readonly gfns: number;
  readonly maxPins: number;
  /** Explore states up to this many calls from boot; null: to the fixpoint. */
  readonly depth: number | null;
  readonly calls?: readonly CallName[] | null;
  readonly symmetry: boolean;
  readonly modelOnly: boolean;
  readonly bugs?: readonly HypBug[];
  /** The real kernel's image to explore instead of the simulation (the bug, if any, is built in). */
  readonly kernelImage?: string;
  /** Called about twice a second while exploring. */
  readonly onProgress?: (p: { states: number; transitions: number; depth: number }) => void;
  /** Stop (unfinished, `stopped: "max-states"`) once this many states were found. */
  readonly maxStates?: number | null;
  /** Stop (unfinished, `stopped: "time-limit"`) after this many milliseconds. */
  readonly timeLimitMs?: number | null;
}

/** Why the search ended: it finished (to the fixpoint or the depth bound), found a violation, or hit a limit. */
export type StopReason = 'fixpoint' | 'depth' | 'violation' | 'max-states' | 'time-limit';

export interface ExploreResult {
  readonly ok: boolean;
  readonly states: number;
  /** Distinct model states among them (equal to `states` with --model-only). */
  readonly abstractStates: number;
  readonly transitions: number;
  /** Largest depth of a state found. */
  readonly depth: number;
  /** True when every reachable state (within the depth bound) was expanded. */
  readonly complete: boolean;
  readonly stopped: StopReason;
  readonly durationMs: number;
  readonly alphabet: number;
  readonly pageSymmetry: boolean;
  /** The geometry features explored (none: the default geometry). */
  readonly geometry: readonly GeometryFeature[];
  readonly coverage: Coverage;
  readonly failure: Failure | null;
  /** The shortest failing sequence (BFS order), when a check failed. */
  readonly trace: readonly TraceStep[] | null;
  /** Bytes stored per state: hash table slots plus the parent/action/depth columns. */
  readonly bytesPerState: number;
  /** Heap growth during the search divided by the states (noisy for small searches). */
  readonly heapBytesPerState: number;
}

/** Growable typed arrays for the per-state records. */
class StateTable {
  parent = new Int32Array(1024);
  action = new Int32Array(1024);
  depth = new Uint16Array(1024);
  count = 0;

  add(parent: number, action: number, depth: number): number {
    if (this.count === this.parent.length) {
      const grow = <T extends Int32Array | Uint16Array>(a: T, make: (n: number) => T): T => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.parent = grow(this.parent, (n) => new Int32Array(n));
      this.action = grow(this.action, (n) => new Int32Array(n));
      this.depth = grow(this.depth, (n) => new Uint16Array(n));
    }
    this.parent[this.count] = parent;
    this.action[this.count] = action;
    this.depth[this.count] = depth;
    return this.count++;
  }

  /** State ids from the root to `id`. */
  path(id: number): number[] {
    const ids: number[] = [];
    for (let x = id; x !== -1; x = this.parent[x]) ids.push(x);
    return ids.reverse();
  }
}

/** Bytes of the typed-array columns per state (the hash set entry comes on top). */
export const RECORD_BYTES = 4 + 4 + 2;

export function explore(o: ExploreOptions): ExploreResult {
  const config = o.config ?? DEFAULT_CONFIG;
  const engine: Engine = o.kernelImage ? new KernelEngine(config, o.kernelImage) : o.modelOnly ? new ModelEngine(config) : new LockstepEngine(config, o.bugs ?? []);
  try {
    return search(o, config, engine);
  } finally {
    if (engine instanceof KernelEngine) engine.close();
  }
}

function search(o: ExploreOptions, config: MachineConfig, engine: Engine): ExploreResult {
  const { universe: u, actions } = buildAlphabet({ ...o, config });
  const abstract = new Canonicalizer(u, o.symmetry);
  const canon = engine instanceof LockstepEngine ? new Canonicalizer(u, o.symmetry, hostStage2Shape(engine)) : abstract;
  const seen = new HashSet53();
  const seenAbstract = new HashSet53();
  /** Adds a state; true when it is new (a full state that is a duplicate has its model state counted already). */
  const visit = (st: State): boolean => {
    if (!seen.add(canon.key(st))) return false;
    if (canon !== abstract) seenAbstract.add(abstract.key(st));
    return true;
  };
  const table = new StateTable();
  // (call, result) coverage, counted per action and result number on the hot path, named at the end.
  const counts = actions.map(() => new Map<number, number>());
  const tally = (a: number, result: number) => counts[a].set(result, (counts[a].get(result) ?? 0) + 1);
  const coverage = (): Coverage => {
    const out: Coverage = {};
    counts.forEach((m, a) => {
      for (const [result, n] of m) {
        const row = (out[actions[a].call] ??= {});
        row[resultName(result)] = (row[resultName(result)] ?? 0) + n;
      }
    });
    return out;
  };
  const heapBefore = process.memoryUsage().heapUsed;
  const started = performance.now();
  let transitions = 0;
  let maxDepth = 0;
  let lastProgress = started;

  // The path the engine is at: state ids, and per depth a hyp mark and a model snapshot.
  engine.reset();
  const cur: number[] = [0];
  const marks: number[] = [engine.mark()];
  const snaps: ModelSnapshot[] = [saveModel(engine.model, u.relevant)];
  visit(engine.model);
  table.add(-1, -1, 0);

  const done = (failure: Failure | null, trace: TraceStep[] | null, complete: boolean, limit?: StopReason): ExploreResult => ({
    ok: failure === null,
    states: table.count,
    abstractStates: canon === abstract ? table.count : seenAbstract.size,
    transitions,
    depth: maxDepth,
    complete,
    stopped: failure !== null ? 'violation' : (limit ?? (o.depth === null ? 'fixpoint' : 'depth')),
    durationMs: performance.now() - started,
    alphabet: actions.length,
    pageSymmetry: canon.pageSymmetry,
    geometry: u.geometry,
    coverage: coverage(),
    failure,
    trace,
    bytesPerState: Math.round((seen.bytes + (canon === abstract ? 0 : seenAbstract.bytes) + table.parent.length * RECORD_BYTES) / table.count),
    heapBytesPerState: Math.round((process.memoryUsage().heapUsed - heapBefore) / table.count),
  });

  const rootFailure = engine.finish();
  if (rootFailure) return done(rootFailure, [], false);

  /** Moves the engine to state `id`: roll back to the common prefix, replay the rest. */
  const goTo = (id: number): Failure | null => {
    const ids = table.path(id);
    let c = 0;
    while (c + 1 < ids.length && c + 1 < cur.length && ids[c + 1] === cur[c + 1]) c++;
    engine.undo(marks[c], c);
    restoreModel(engine.model, u.relevant, snaps[c]);
    cur.length = marks.length = snaps.length = c + 1;
    for (let k = c + 1; k < ids.length; k++) {
      const ts = actions[table.action[ids[k]]].resolve(engine.model)!;
      const { failure } = engine.step(ts, k - 1);
      if (failure) return failure;
      cur.push(ids[k]);
      marks.push(engine.mark());
      snaps.push(saveModel(engine.model, u.relevant));
    }
    return null;
  };

  const maxStates = o.maxStates ?? Infinity;
  const deadline = started + (o.timeLimitMs ?? Infinity);
  for (let head = 0; head < table.count; head++) {
    const d = table.depth[head];
    if (o.depth !== null && d >= o.depth) return done(null, null, true);
    if (table.count >= maxStates) return done(null, null, false, 'max-states');
    if ((head & 0xff) === 0 && performance.now() > deadline) return done(null, null, false, 'time-limit');
    const replayFailure = goTo(head);
    if (replayFailure) return done(replayFailure, stepsOf(config, actions, table, table.path(head)), false);
    const s = engine.model;
    for (let a = 0; a < actions.length; a++) {
      const ts = actions[a].resolve(s);
      if (ts === null) continue;
      const m = engine.mark();
      const { result, failure } = engine.step(ts, d);
      transitions++;
      if (result !== undefined) tally(a, result);
      if (failure) return done(failure, [...stepsOf(config, actions, table, table.path(head)), ts], false);
      // The model changes only on success, except host_access, which changes only the fault log on
      // failure; a successful host access may still map a block in hyp's host stage-2.
      const changed = result !== undefined && (ts.call === 'host_access' ? result < 0 || canon !== abstract : result >= 0);
      if (changed) {
        if (visit(s)) {
          const id = table.add(head, a, d + 1);
          if (d + 1 > maxDepth) maxDepth = d + 1;
          const f = engine.finish();
          if (f) return done(f, stepsOf(config, actions, table, table.path(id)), false);
        }
        restoreModel(s, u.relevant, snaps[d]);
      }
      engine.undo(m, d);
    }
    if (o.onProgress && (transitions & 0xfff) < actions.length) {
      const now = performance.now();
      if (now - lastProgress > 500) {
        lastProgress = now;
        o.onProgress({ states: table.count, transitions, depth: maxDepth });
      }
    }
  }
  return done(null, null, true);
}

/**
 * Host stage-2 leaf of each pfn as a small integer: level * 3 + (zero 0, valid 1, annotation 2).
 * A leaf above the last level covers its whole aligned span, so the next pfns inside it (a shared
 * 2 MiB block's) take its shape without another walk.
 */
function hostStage2Shape(engine: LockstepEngine): (pfns: readonly number[], out: number[]) => void {
  const hyp = engine.ls.hyp;
  return (pfns, out) => {
    let [spanStart, spanEnd, shape] = [0, 0, 0];
    for (let i = 0; i < pfns.length; i++) {
      const pfn = pfns[i];
      if (pfn < spanStart || pfn >= spanEnd) {
        const t = translate(hyp.mem, hyp.host_mmu, pfn);
        shape = t.level * 3 + (isZero(t) ? 0 : isValid(t) ? 1 : 2);
        const size = kvm_granule_pages(t.level);
        spanStart = pfn - (pfn % size);
        spanEnd = spanStart + size;
      }
      out[i] = shape;
    }
  };
}

/** The concrete steps along a path of state ids (VM slots resolved to handles by replaying the model). */
function stepsOf(config: MachineConfig, actions: readonly Action[], table: StateTable, ids: readonly number[]): TraceStep[] {
  const model = new ModelEngine(config);
  return ids.slice(1).map((id) => {
    const ts = actions[table.action[id]].resolve(model.model)!;
    model.step(ts);
    return ts;
  });
}
