// The benchmark: lockstep throughput, hyp-only and model-only throughput, the per-call cost of 4 GiB
// of simulated memory against 16 MiB, and the time the default suite takes to find each catalogued
// bug. One module; `npm run bench` (bench/run.ts) and `pkvm-check bench` are thin front ends.
import { benchExplore } from '../checker/explore/bench';
import { explore } from '../checker/explore/bfs';
import { OWNERSHIP_BUGS } from '../checker/bugs/ownership';
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Call } from '../types/calls';
import { DEFAULT_CONFIG, type MachineConfig } from '../types/config';
import { DEFAULT_KERNEL, type KernelVersion } from '../types/kernel';
import { execModel, initialState } from '../model';
import { Pkvm } from '../hyp/pkvm';
import { handle_host_hcall } from '../hyp/hyp-main';
import { Lockstep } from '../checker/lockstep';
import { runSequence, runSteps } from '../checker/sequence';
import { resolve, sequenceArb, type AbstractStep } from '../checker/generators';
import { resolveStep } from '../checker/vocabulary';
import { CATALOG } from '../checker/bugs/catalog';
import { SUITES, runSuite } from '../checker/suites';

/** 4 GiB of memory at the same base as the default 16 MiB. */
export const LARGE_CONFIG: MachineConfig = { memory: [[0x40000, 1048576]], pageSize: 4096 };

export interface BenchOptions {
  readonly seed: number;
  /** Abstract sequences pre-generated for the throughput figures. */
  readonly sequences: number;
  readonly maxSteps: number;
  /** Each throughput figure repeats passes over the sequences until at least this much time passed. */
  readonly minMs: number;
  /** Seeds 1..N for time-to-bug (the median over them is reported). */
  readonly bugSeeds: number;
  /** `runs` given to runSuite for time-to-bug. */
  readonly bugRuns: number;
  /** Restrict time-to-bug to these ids (default: every catalogued bug whose suite is available). */
  readonly bugs?: readonly string[];
  /** Also measure the explorer (a few seconds). */
  readonly explorer?: boolean;
  /** The pKVM every machine of the bench models (default: a config without `kernel`, i.e. 6.16). */
  readonly kernel?: KernelVersion;
}

export const DEFAULT_BENCH: BenchOptions = { seed: 42, sequences: 100, maxSteps: 80, minMs: 1000, bugSeeds: 10, bugRuns: 200 };
/** A workload small enough for a test. */
export const TINY_BENCH: BenchOptions = { seed: 1, sequences: 10, maxSteps: 20, minMs: 1, bugSeeds: 1, bugRuns: 50, explorer: false };

export interface BugTiming {
  /** Median wall time to a failure (including shrinking), over the seeds that found it. */
  readonly ms: number;
  /** Median time the sequences before the failing one took (the rest of `ms` is the failing run and shrinking). */
  readonly passedMs: number;
  /** Median number of sequences run up to and including the first failing one. */
  readonly sequences: number;
  /** Median length of the shrunk counterexample. */
  readonly shrunkLength: number;
  readonly found: number;
  readonly seeds: number;
}

export interface BenchResult {
  readonly callsPerSecond: number;
  /** The lockstep's median pass (callsPerSecond is its best). */
  readonly callsPerSecondMedianPass: number;
  /** The lockstep's best pass over ten times as many sequences (a broader mix of the same generator). */
  readonly callsPerSecondBroadSample: number;
  readonly hypOnlyCallsPerSecond: number;
  readonly modelOnlyCallsPerSecond: number;
  /**
   * Lockstep cost per call on 4 GiB over 16 MiB, on the same concrete calls: the recorded calls of
   * the sequences that return exactly the same results on both machines (so both do the same work).
   */
  readonly costRatioLargeVsSmallMemory: number;
  /**
   * The same, with each machine resolving the generated sequences against its own memory: random
   * pages then spread over 256 times as many 2 MiB blocks, so 4 GiB builds and scans more tables.
   */
  readonly costRatioLargeVsSmallMemoryGeneratedWork: number;
  /** Hyp alone on the same concrete calls, 4 GiB vs 16 MiB. */
  readonly hypCostRatioLargeVsSmallMemorySameCalls: number;
  /** How many of the sequences had identical results on both memory sizes (the work of the same-call ratios). */
  readonly hypSameCallsSequences: number;
  /** Median ms per bug; a bug no seed found is left out here (see `bugs`). */
  readonly timeToBugMs: Record<string, number>;
  /** Explorer throughput (model only and lockstep) and bytes stored per state. */
  readonly explorer: ReturnType<typeof benchExplore> | null;
  /** Length of the shortest failing trace the explorer finds, per ownership bug. */
  readonly shortestTrace: Record<string, number>;
  readonly sequencesToBug: Record<string, number>;
  readonly shrunkLength: Record<string, number>;
  readonly bugs: Record<string, BugTiming>;
  /** Lockstep ns per call with 16 MiB and with 4 GiB (the same concrete calls). */
  readonly nsPerCallSmall: number;
  readonly nsPerCallLarge: number;
  readonly calls: number;
  /** The pKVM measured (`--kernel`, else the default). */
  readonly kernel: KernelVersion;
  readonly options: BenchOptions;
  readonly durationMs: number;
}

const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** A throughput: the best whole pass (other processes only ever slow a pass down) and the median one. */
interface Rate {
  readonly perSecond: number;
  readonly medianPerSecond: number;
  readonly calls: number;
}

/**
 * Throughputs of several workloads, each `one(i)` for i = 0 .. count-1 returning the calls it made.
 * Whole passes (so that two rates over the same items compare the same work), interleaved across the
 * workloads (so that a busy moment of the machine hits them alike): passes first warm the JIT up for
 * `minMs / 2`, then are timed, at least `minPasses` per workload and until `minMs` passed.
 */
function rates(count: number, ones: readonly ((i: number) => number)[], minMs: number, minPasses = 3): Rate[] {
  const pass = (one: (i: number) => number): [number, number] => {
    let c = 0;
    const p0 = performance.now();
    for (let i = 0; i < count; i++) c += one(i);
    return [c, performance.now() - p0];
  };
  const w0 = performance.now();
  do for (const one of ones) pass(one);
  while (performance.now() - w0 < minMs / 2);
  const calls = ones.map(() => 0);
  const perPass: number[][] = ones.map(() => []);
  const t0 = performance.now();
  while (perPass[0].length < minPasses || performance.now() - t0 < minMs) {
    ones.forEach((one, k) => {
      const [c, dt] = pass(one);
      calls[k] += c;
      perPass[k].push((c * 1000) / Math.max(dt, 1e-3));
    });
  }
  return perPass.map((r, k) => ({ perSecond: Math.max(...r), medianPerSecond: median(r), calls: calls[k] }));
}

const rate = (count: number, one: (i: number) => number, minMs: number): Rate => rates(count, [one], minMs)[0];

export function sampleSequences(opts: Pick<BenchOptions, 'seed' | 'sequences' | 'maxSteps'>): AbstractStep[][] {
  return fc.sample(sequenceArb(opts.maxSteps), { seed: opts.seed, numRuns: opts.sequences });
}

function lockstepOne(ls: Lockstep, seq: readonly AbstractStep[]): number {
  const before = ls.calls;
  runSequence(ls, seq, resolve);
  return ls.calls - before;
}

/** The concrete calls each sequence made on the correct implementation. */
export function recordCalls(config: MachineConfig, seqs: readonly AbstractStep[][]): Call[][] {
  const ls = new Lockstep(config);
  return seqs.map((seq) => {
    const out = runSequence(ls, seq, resolve);
    return out.steps.map((s) => resolveStep(s, ls.results));
  });
}

function hypOne(hyp: Pkvm, seq: readonly Call[]): number {
  hyp.mem.undo(0);
  for (const c of seq) {
    try {
      handle_host_hcall(hyp, c);
    } catch {
      // a harness limit (pool exhausted): counted like any other call
    }
  }
  return seq.length;
}

function modelOne(config: MachineConfig, carveout: Parameters<typeof initialState>[1][number], seq: readonly Call[]): number {
  const s = initialState(config, [carveout]);
  for (const c of seq) execModel(s, c);
  return seq.length;
}

function results(config: MachineConfig, calls: readonly Call[][]): string[] {
  const hyp = new Pkvm(config);
  return calls.map((seq) => {
    hyp.mem.undo(0);
    return seq
      .map((c) => {
        try {
          return handle_host_hcall(hyp, c);
        } catch {
          return 'throw';
        }
      })
      .join(',');
  });
}

/** The call sequences whose results are the same on both configs. */
function sameOutcomes(calls: readonly Call[][], a: MachineConfig, b: MachineConfig): Call[][] {
  const ra = results(a, calls);
  const rb = results(b, calls);
  const same = calls.filter((_, i) => ra[i] === rb[i]);
  return same.length > 0 ? same : [...calls];
}

/**
 * Throughput of the same `count` items on each config, measured interleaved: `make` builds a runner
 * per config, `one(runner, i)` runs item i and returns the calls it made.
 */
function ratesPerConfig<R>(configs: readonly MachineConfig[], make: (c: MachineConfig) => R, count: number, one: (r: R, i: number) => number, minMs: number): (Rate & { nsPerCall: number })[] {
  const runners = configs.map(make);
  return rates(count, runners.map((r) => (i: number) => one(r, i)), minMs).map((r) => ({ ...r, nsPerCall: 1e9 / r.perSecond }));
}

/** The lockstep running generated sequences (resolved against each config's own memory). */
const lockstepRates = (configs: readonly MachineConfig[], seqs: readonly AbstractStep[][], minMs: number) =>
  ratesPerConfig(configs, (c) => new Lockstep(c), seqs.length, (ls, i) => lockstepOne(ls, seqs[i]), minMs);

/** The lockstep running recorded concrete calls (no resolving: the same calls on every config). */
const lockstepStepsRates = (configs: readonly MachineConfig[], calls: readonly Call[][], minMs: number) =>
  ratesPerConfig(configs, (c) => new Lockstep(c), calls.length, (ls, i) => {
    const out = runSteps(ls, calls[i]);
    if (out.failure) throw new Error(`bench: a recorded sequence failed on replay: ${out.failure.message}`);
    return calls[i].length;
  }, minMs);

/** Hyp alone replaying recorded calls. */
const hypRates = (configs: readonly MachineConfig[], calls: readonly Call[][], minMs: number) =>
  ratesPerConfig(configs, (c) => new Pkvm(c), calls.length, (hyp, i) => hypOne(hyp, calls[i]), minMs);

export function timeToBug(id: string, opts: Pick<BenchOptions, 'bugSeeds' | 'bugRuns' | 'maxSteps' | 'kernel'>): BugTiming {
  const suite = CATALOG.find((b) => b.id === id)?.suite;
  if (!suite || !SUITES[suite]) throw new Error(`bench: bug ${id} has no available suite`);
  const outDir = mkdtempSync(join(tmpdir(), 'pkvm-bench-'));
  const ms: number[] = [];
  const seqs: number[] = [];
  const lens: number[] = [];
  const detect: number[] = [];
  try {
    for (let seed = 1; seed <= opts.bugSeeds; seed++) {
      let runsDone = 0;
      const t0 = performance.now();
      let lastPass = t0;
      const r = runSuite(suite, {
        runs: opts.bugRuns,
        seed,
        maxSteps: opts.maxSteps,
        inject: id,
        outDir,
        ...(opts.kernel ? { kernel: opts.kernel } : {}),
        onProgress: (p) => {
          runsDone = p.runsDone;
          lastPass = performance.now();
        },
      });
      const dt = performance.now() - t0;
      if (r.ok) continue;
      ms.push(dt);
      detect.push(lastPass - t0);
      seqs.push(runsDone + 1);
      if (r.counterexampleSteps !== undefined) lens.push(r.counterexampleSteps);
    }
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
  return { ms: median(ms), passedMs: median(detect), sequences: median(seqs), shrunkLength: median(lens), found: ms.length, seeds: opts.bugSeeds };
}

export function availableBugs(): string[] {
  return CATALOG.filter((b) => SUITES[b.suite]).map((b) => b.id);
}

export function runBench(opts: BenchOptions = DEFAULT_BENCH, log: (line: string) => void = () => {}): BenchResult {
  const started = performance.now();
  const seqs = sampleSequences(opts);
  // Both machines model the chosen version; without --kernel they stay the configs they always were.
  const versioned = (c: MachineConfig): MachineConfig => (opts.kernel ? { ...c, kernel: opts.kernel } : c);
  const SMALL = versioned(DEFAULT_CONFIG);
  const LARGE = versioned(LARGE_CONFIG);

  log('lockstep ...');
  // The JIT needs a couple of seconds of the whole loop before the code is at its fastest tier.
  lockstepRates([SMALL], seqs, 2 * opts.minMs);
  // This machine's CPU alternates between a fast and a slow speed for seconds at a time (hyp-only
  // passes of the same calls vary about 1.8x): the lockstep figures watch for 3 x minMs to see both.
  const [alone] = lockstepRates([SMALL], seqs, 3 * opts.minMs);
  const [broad] = lockstepRates([SMALL], sampleSequences({ ...opts, sequences: 10 * opts.sequences }), 3 * opts.minMs);
  log('lockstep, 16 MiB and 4 GiB ...');
  const [small, large] = lockstepRates([SMALL, LARGE], seqs, 2 * opts.minMs);

  log('hyp only, model only ...');
  const calls = recordCalls(SMALL, seqs);
  const [hypOnly] = hypRates([SMALL], calls, opts.minMs);
  // Hyp's own growth with memory: the concrete calls of the sequences that return exactly the same
  // results on 4 GiB as on 16 MiB (same base pfn; a range that ends at 16 MiB's end fails there but
  // may succeed on 4 GiB, which is different work), on both.
  const same = sameOutcomes(calls, SMALL, LARGE);
  const [hypSameSmall, hypSameLarge] = hypRates([SMALL, LARGE], same, opts.minMs);
  const [sameSmall, sameLarge] = lockstepStepsRates([SMALL, LARGE], same, opts.minMs);
  const carveout = new Pkvm(SMALL).layout.carveout;
  const modelOnly = rate(calls.length, (i) => modelOne(SMALL, carveout, calls[i]), opts.minMs);

  const timeToBugMs: Record<string, number> = {};
  const sequencesToBug: Record<string, number> = {};
  const shrunkLength: Record<string, number> = {};
  const bugs: Record<string, BugTiming> = {};
  for (const id of opts.bugs ?? availableBugs()) {
    log(`time to bug: ${id} ...`);
    const t = timeToBug(id, opts);
    bugs[id] = t;
    if (t.found > 0) {
      timeToBugMs[id] = t.ms;
      sequencesToBug[id] = t.sequences;
      shrunkLength[id] = t.shrunkLength;
    }
  }

  let explorer: BenchResult['explorer'] = null;
  if (opts.explorer !== false) {
    log('explorer ...');
    explorer = benchExplore(opts.kernel ? SMALL : undefined);
  }
  // The explorer's shortest trace for every ownership bug, against the random suite's shrunk length.
  const shortestTrace: Record<string, number> = {};
  for (const bug of opts.explorer === false ? [] : OWNERSHIP_BUGS) {
    const r = explore({ pages: 2, vms: 1, gfns: 2, maxPins: 2, depth: 4, symmetry: true, modelOnly: false, bugs: [bug], ...(opts.kernel ? { config: SMALL } : {}) });
    if (r.trace) shortestTrace[bug.id] = r.trace.length;
  }

  return {
    explorer,
    shortestTrace,
    callsPerSecond: alone.perSecond,
    callsPerSecondMedianPass: alone.medianPerSecond,
    callsPerSecondBroadSample: broad.perSecond,
    hypOnlyCallsPerSecond: hypOnly.perSecond,
    modelOnlyCallsPerSecond: modelOnly.perSecond,
    costRatioLargeVsSmallMemory: sameLarge.nsPerCall / sameSmall.nsPerCall,
    costRatioLargeVsSmallMemoryGeneratedWork: large.nsPerCall / small.nsPerCall,
    hypCostRatioLargeVsSmallMemorySameCalls: hypSameLarge.nsPerCall / hypSameSmall.nsPerCall,
    hypSameCallsSequences: same.length,
    timeToBugMs,
    sequencesToBug,
    shrunkLength,
    bugs,
    nsPerCallSmall: sameSmall.nsPerCall,
    nsPerCallLarge: sameLarge.nsPerCall,
    kernel: opts.kernel ?? DEFAULT_KERNEL,
    calls: alone.calls + broad.calls + small.calls + large.calls + sameSmall.calls + sameLarge.calls + hypOnly.calls + hypSameSmall.calls + hypSameLarge.calls + modelOnly.calls,
    options: opts,
    durationMs: performance.now() - started,
  };
}

/** The readable table. */
export function formatBench(r: BenchResult): string {
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  const lines = [
    `pKVM ${r.kernel} (simulated)`,
    `lockstep (model + hyp + checks)  ${n(r.callsPerSecond).padStart(12)} calls/s   (target >= 100,000; best pass, median pass ${n(r.callsPerSecondMedianPass)})`,
    `lockstep, ${n(10 * r.options.sequences)} sequences       ${n(r.callsPerSecondBroadSample).padStart(12)} calls/s   (best pass)`,
    `hyp only                         ${n(r.hypOnlyCallsPerSecond).padStart(12)} calls/s`,
    `model only                       ${n(r.modelOnlyCallsPerSecond).padStart(12)} calls/s`,
    `cost per call 4 GiB / 16 MiB     ${r.costRatioLargeVsSmallMemory.toFixed(2).padStart(12)}           (same calls: ${n(r.nsPerCallLarge)} ns vs ${n(r.nsPerCallSmall)} ns, ${r.hypSameCallsSequences} of ${r.options.sequences} sequences; target <= 1.5)`,
    `  generated work, resolved on each ${r.costRatioLargeVsSmallMemoryGeneratedWork.toFixed(2).padStart(12)}           (4 GiB spreads the random pages over more blocks, so more tables)`,
    `  hyp only, same calls             ${r.hypCostRatioLargeVsSmallMemorySameCalls.toFixed(2).padStart(12)}`,
    '',
    `time to bug (median over seeds 1..${r.options.bugSeeds}, runs ${r.options.bugRuns}, max steps ${r.options.maxSteps}; target < 1000 ms; search: ms before the failing sequence, the rest is it and shrinking)`,
    `  ${'bug'.padEnd(34)} ${'ms'.padStart(8)} ${'search'.padStart(7)} ${'seqs'.padStart(6)} ${'shrunk'.padStart(7)} ${'found'.padStart(7)}`,
  ];
  for (const [id, t] of Object.entries(r.bugs)) {
    const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
    lines.push(`  ${id.padEnd(34)} ${f(t.ms).padStart(8)} ${f(t.passedMs).padStart(7)} ${f(t.sequences).padStart(6)} ${f(t.shrunkLength).padStart(7)} ${`${t.found}/${t.seeds}`.padStart(7)}`);
  }
  if (r.explorer) lines.push(
    '',
    `explorer, model only              ${n(r.explorer.modelOnlyTransitionsPerSecond).padStart(12)} transitions/s   (target >= 1,000,000)`,
    `explorer, lockstep                ${n(r.explorer.lockstepTransitionsPerSecond).padStart(12)} transitions/s   (target >= 100,000)`,
    `explorer, memory                  ${n(r.explorer.bytesPerState).padStart(12)} bytes/state`,
    '',
    `shrunk trace vs the explorer's shortest (pages 2, depth 4)`,
    ...Object.entries(r.shortestTrace).map(([id, len]) => `  ${id.padEnd(34)} ${String(r.shrunkLength[id] ?? '-').padStart(4)} vs ${len}`),
  );
  lines.push('', `total ${(r.durationMs / 1000).toFixed(1)} s`);
  return `${lines.join('\n')}\n`;
}

/** The CONTRACT's `bench --json` object (plus extensions). */
export function benchJson(r: BenchResult): Record<string, unknown> {
  const { options: _o, ...rest } = r;
  return rest;
}
