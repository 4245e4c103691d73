// `pkvm-check explore`: exhaustive bounded exploration (CONTRACT.md). Exit 0 when every invariant
// holds on every transition explored, 1 on a violation (shortest trace written), 2 on bad flags.
import { parseKernelFlag, parseTarget, requireSupported, TARGET_FLAGS } from './target';
import { configFor, type TargetSpec } from '../targets/spec';
import { KERNEL_CALLS } from '../targets/kernel';
import type { CallName } from '../../types/calls';
import { DEFAULT_CONFIG } from '../../types/config';
import { hypBugsFor } from '../bugs/catalog';
import { saveTrace } from '../counterexample';
import { ALL_EXPLORE_CALLS, EXPLORE_CALLS, GEOMETRY_FEATURES, universe, type GeometryFeature } from '../explore/alphabet';
import { explore, type ExploreResult } from '../explore/bfs';
import { TRACE_FORMAT, encodeTrace, readConfigFile, replayCommandLine, type TraceFile } from '../trace/file';
import { formatCall } from '../vocabulary';
import { parseInject } from './inject';
import { outputDir } from './out-dir';
import { intFlag, parseFlags, UsageError } from './usage';

const FLAGS = {
  pages: { type: 'string' },
  depth: { type: 'string' },
  vms: { type: 'string' },
  gfns: { type: 'string' },
  'max-pins': { type: 'string' },
  calls: { type: 'string' },
  'no-symmetry': { type: 'boolean' },
  'model-only': { type: 'boolean' },
  inject: { type: 'string' },
  'time-limit': { type: 'string' },
  'max-states': { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
  config: { type: 'string' },
  geometry: { type: 'string' },
  ...TARGET_FLAGS,
} as const;

/**
 * Off a terminal (a CI log), a progress line after 2 s, 4 s, 8 s, ... and then every minute: a short
 * search prints nothing, a long one shows it is alive without flooding the log.
 */
const nextLog = (elapsedMs: number): number => Math.min(2 * Math.max(elapsedMs, 1000), elapsedMs + 60_000);

/** `--calls a,b`: kernel names of ownership calls; `all` is every explorable call. */
function parseCalls(value: string | undefined): CallName[] | null {
  if (value === undefined) return null;
  if (value.trim() === 'all') return [...ALL_EXPLORE_CALLS];
  const names = value.split(',').map((s) => s.trim());
  for (const n of names)
    if (!(ALL_EXPLORE_CALLS as readonly string[]).includes(n))
      throw new UsageError(`--calls: unknown or unexplorable call "${n}" (expected all, or a comma-separated list of: ${ALL_EXPLORE_CALLS.join(', ')})`);
  return names as CallName[];
}

/** `--geometry default` or a comma-separated list of features (checker/explore/alphabet.ts). */
function parseGeometry(value: string | undefined): GeometryFeature[] {
  if (value === undefined || value === 'default') return [];
  const names = value.split(',').map((s) => s.trim());
  for (const n of names)
    if (!(GEOMETRY_FEATURES as readonly string[]).includes(n)) throw new UsageError(`--geometry: unknown geometry "${n}" (expected default, or a comma-separated list of: ${GEOMETRY_FEATURES.join(', ')})`);
  return GEOMETRY_FEATURES.filter((f) => names.includes(f));
}

const geometryName = (g: readonly GeometryFeature[]): string => (g.length === 0 ? 'default' : g.join(','));

export async function exploreCommand(argv: string[]): Promise<number> {
  const { values: v } = parseFlags(argv, FLAGS);
  const onKernel = v.target === 'kernel';
  const kernel = parseKernelFlag(v);
  const pages = intFlag('pages', v.pages, 2, 1, 64);
  const depth = v.depth === undefined ? null : intFlag('depth', v.depth, 0, 0, 65535);
  // The kernel target runs no VM calls: its alphabet is the ownership calls 6.12 has, without VMs.
  const vms = intFlag('vms', v.vms, onKernel ? 0 : 1, 0, onKernel ? 0 : 8);
  const gfns = intFlag('gfns', v.gfns, 2, 0, 64);
  const maxPins = intFlag('max-pins', v['max-pins'], 2, 0, 1000);
  const geometry = parseGeometry(v.geometry);
  const calls = parseCalls(v.calls) ?? (onKernel ? EXPLORE_CALLS.filter((c) => KERNEL_CALLS.includes(c)) : null);
  if (onKernel && calls) requireSupported({ name: 'kernel', imageDir: '' }, calls, '--calls');
  // The alphabet is ownership calls: only ownership bugs are reachable.
  const bug = parseInject(v.inject, ['ownership'], 'explore') ?? null;
  const modelOnly = v['model-only'] === true;
  if (modelOnly && bug) throw new UsageError('--inject: a bug lives in hyp, which --model-only does not run');
  if (modelOnly && onKernel) throw new UsageError('--model-only: runs no target, so not --target kernel');
  const timeLimit = v['time-limit'] === undefined ? null : intFlag('time-limit', v['time-limit'], 0, 1, 1_000_000);
  const maxStates = v['max-states'] === undefined ? null : intFlag('max-states', v['max-states'], 0, 1, 2_000_000_000);
  const outDir = outputDir('out', v.out, 'counterexamples');
  const symmetry = v['no-symmetry'] !== true;
  const json = v.json === true;
  const machine = v.config === undefined ? DEFAULT_CONFIG : readConfigFile(v.config);
  // Last, since it may build a kernel: every other flag was checked first.
  const target = parseTarget(v, bug?.id ?? null);
  const config = configFor(target, kernel === undefined ? machine : { ...machine, kernel });
  // The pages and the geometry must fit the machine: a one-line usage error, not a stack trace.
  try {
    universe({ config, geometry, pages, vms, gfns, maxPins });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^explore: /, ''));
  }
  const tty = !json && process.stderr.isTTY === true;
  const started = performance.now();
  let logAt = nextLog(0);
  const progress = (p: { states: number; transitions: number; depth: number }): void => {
    const elapsed = performance.now() - started;
    const line = `explore: ${p.states} states, ${p.transitions} transitions, depth ${p.depth}, ${(elapsed / 1000).toFixed(0)} s`;
    if (tty) process.stderr.write(`\r${line}   `);
    else if (elapsed >= logAt) {
      logAt = nextLog(elapsed);
      process.stderr.write(`${line}\n`);
    }
  };

  const r = explore({
    config,
    geometry,
    pages,
    vms,
    gfns,
    maxPins,
    depth,
    calls,
    symmetry,
    modelOnly,
    bugs: target.name === 'sim' ? hypBugsFor(bug?.id ?? null) : [],
    ...(target.name === 'kernel' ? { kernelImage: target.imageDir } : {}),
    maxStates,
    timeLimitMs: timeLimit === null ? null : timeLimit * 1000,
    onProgress: progress,
  });
  if (tty) process.stderr.write('\r\x1b[K');
  const bytesPerState = r.bytesPerState;

  let counterexample: string | null = null;
  if (r.failure && r.trace) {
    const trace: TraceFile = { format: TRACE_FORMAT, config, inject: bug?.id ?? null, seed: null, steps: r.trace, failure: r.failure };
    const saved = saveTrace(trace, outDir, target);
    counterexample = saved.path;
    if (saved.problem !== null) process.stderr.write(`pkvm-check explore: ${saved.problem}; the trace:\n${encodeTrace(trace)}`);
  }
  const seconds = r.durationMs / 1000;
  const out = {
    ok: r.ok,
    states: r.states,
    transitions: r.transitions,
    depth: r.depth,
    statesPerSecond: Math.round(r.states / seconds),
    counterexample,
    transitionsPerSecond: Math.round(r.transitions / seconds),
    abstractStates: r.abstractStates,
    complete: r.complete,
    stopped: r.stopped,
    durationMs: Math.round(r.durationMs),
    modelOnly,
    symmetry,
    pageSymmetry: r.pageSymmetry,
    geometry: geometryName(r.geometry),
    inject: bug?.id ?? null,
    alphabet: r.alphabet,
    bytesPerState,
    heapBytesPerState: r.heapBytesPerState,
    failure: r.failure,
    coverage: r.coverage,
  };
  if (json) process.stdout.write(`${JSON.stringify(out)}\n`);
  else printHuman(r, out, depth, target);
  return r.ok ? 0 : 1;
}

/** How the search ended, in words: only a finished search says "fixpoint" or "bound". */
function ending(r: ExploreResult, bound: number | null): string {
  switch (r.stopped) {
    case 'fixpoint':
      return 'fixpoint';
    case 'depth':
      return `bound ${bound}`;
    case 'violation':
      return 'stopped at a violation';
    case 'max-states':
      return 'stopped at limit: --max-states, not finished';
    case 'time-limit':
      return 'stopped at limit: --time-limit, not finished';
  }
}

function printHuman(r: ExploreResult, out: { statesPerSecond: number; transitionsPerSecond: number; bytesPerState: number; counterexample: string | null; inject: string | null }, bound: number | null, target: TargetSpec): void {
  const lines = [
    `explore: ${r.states} states (${r.abstractStates} model states), ${r.transitions} transitions, depth ${r.depth} (${ending(r, bound)}), ${(r.durationMs / 1000).toFixed(2)} s`,
    `  ${out.statesPerSecond} states/s, ${out.transitionsPerSecond} transitions/s, ~${out.bytesPerState} bytes/state, alphabet of ${r.alphabet} actions${r.pageSymmetry ? ', page symmetry' : ''}${r.geometry.length > 0 ? `, geometry ${geometryName(r.geometry)}` : ''}`,
    `  coverage: ${Object.entries(r.coverage)
      .map(([call, row]) => `${call} {${Object.keys(row).sort().join(' ')}}`)
      .join(', ')}`,
  ];
  if (r.failure) {
    lines.push(`VIOLATION ${r.failure.property} at step ${r.failure.step}: ${r.failure.message}`);
    (r.trace ?? []).forEach((s, i) => lines.push(`  ${i + 1}. ${formatCall(s)}`));
    if (out.counterexample) lines.push(`shortest trace written to ${out.counterexample}`, `replay: ${replayCommandLine(out.counterexample, out.inject, target)}`);
  } else lines.push(r.complete ? 'all invariants hold' : 'all invariants hold on the states explored');
  process.stdout.write(`${lines.join('\n')}\n`);
}
