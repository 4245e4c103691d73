// `pkvm-check explore`: exhaustive bounded exploration (CONTRACT.md). Exit 0 when every invariant
// holds on every transition explored, 1 on a violation (shortest trace written), 2 on bad flags.
import type { CallName } from '../../types/calls';
import { DEFAULT_CONFIG } from '../../types/config';
import { OWNERSHIP_BUGS, type HypBug } from '../bugs/ownership';
import { EXPLORE_CALLS } from '../explore/alphabet';
import { explore, type ExploreResult } from '../explore/bfs';
import { TRACE_FORMAT, replayCommandLine, writeTrace } from '../trace/file';
import { formatCall } from '../vocabulary';
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
  out: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** `--calls a,b`: kernel names of ownership calls. */
function parseCalls(value: string | undefined): CallName[] | null {
  if (value === undefined) return null;
  const names = value.split(',').map((s) => s.trim());
  for (const n of names)
    if (!(EXPLORE_CALLS as readonly string[]).includes(n)) throw new UsageError(`--calls: unknown or unexplorable call "${n}" (expected a comma-separated list of: ${EXPLORE_CALLS.join(', ')})`);
  return names as CallName[];
}

function parseInject(value: string | undefined): HypBug | null {
  if (value === undefined || value === 'none') return null;
  const bug = OWNERSHIP_BUGS.find((b) => b.id === value);
  if (!bug) throw new UsageError(`--inject: unknown bug id "${value}" (see pkvm-check bugs; the explorer takes the ownership bugs: ${OWNERSHIP_BUGS.map((b) => b.id).join(', ')})`);
  return bug;
}

export async function exploreCommand(argv: string[]): Promise<number> {
  const { values: v } = parseFlags(argv, FLAGS);
  const pages = intFlag('pages', v.pages, 2, 1, 64);
  const depth = v.depth === undefined ? null : intFlag('depth', v.depth, 0, 0, 65535);
  const vms = intFlag('vms', v.vms, 1, 0, 8);
  const gfns = intFlag('gfns', v.gfns, 2, 0, 64);
  const maxPins = intFlag('max-pins', v['max-pins'], 2, 0, 1000);
  const calls = parseCalls(v.calls);
  const bug = parseInject(v.inject);
  const modelOnly = v['model-only'] === true;
  if (modelOnly && bug) throw new UsageError('--inject: a bug lives in hyp, which --model-only does not run');
  const symmetry = v['no-symmetry'] !== true;
  const json = v.json === true;
  const progress = !json && process.stderr.isTTY === true;

  const r = explore({
    config: DEFAULT_CONFIG,
    pages,
    vms,
    gfns,
    maxPins,
    depth,
    calls,
    symmetry,
    modelOnly,
    bugs: bug ? [bug] : [],
    onProgress: progress ? (p) => process.stderr.write(`\rexplore: ${p.states} states, ${p.transitions} transitions, depth ${p.depth}   `) : undefined,
  });
  if (progress) process.stderr.write('\r\x1b[K');
  const bytesPerState = r.bytesPerState;

  let counterexample: string | null = null;
  if (r.failure && r.trace) {
    counterexample = writeTrace(v.out ?? 'counterexamples', r.failure.property, {
      format: TRACE_FORMAT,
      config: DEFAULT_CONFIG,
      inject: bug?.id ?? null,
      seed: null,
      steps: r.trace,
      failure: r.failure,
    });
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
    durationMs: Math.round(r.durationMs),
    modelOnly,
    symmetry,
    pageSymmetry: r.pageSymmetry,
    inject: bug?.id ?? null,
    alphabet: r.alphabet,
    bytesPerState,
    heapBytesPerState: r.heapBytesPerState,
    failure: r.failure,
    coverage: r.coverage,
  };
  if (json) process.stdout.write(`${JSON.stringify(out)}\n`);
  else printHuman(r, out, depth);
  return r.ok ? 0 : 1;
}

function printHuman(r: ExploreResult, out: { statesPerSecond: number; transitionsPerSecond: number; bytesPerState: number; counterexample: string | null; inject: string | null }, bound: number | null): void {
  const lines = [
    `explore: ${r.states} states (${r.abstractStates} model states), ${r.transitions} transitions, depth ${r.depth}${bound === null ? ' (fixpoint)' : ` (bound ${bound})`}, ${(r.durationMs / 1000).toFixed(2)} s`,
    `  ${out.statesPerSecond} states/s, ${out.transitionsPerSecond} transitions/s, ~${out.bytesPerState} bytes/state, alphabet of ${r.alphabet} actions${r.pageSymmetry ? ', page symmetry' : ''}`,
    `  coverage: ${Object.entries(r.coverage)
      .map(([call, row]) => `${call} {${Object.keys(row).sort().join(' ')}}`)
      .join(', ')}`,
  ];
  if (r.failure) {
    lines.push(`VIOLATION ${r.failure.property} at step ${r.failure.step}: ${r.failure.message}`);
    (r.trace ?? []).forEach((s, i) => lines.push(`  ${i + 1}. ${formatCall(s)}`));
    if (out.counterexample) lines.push(`shortest trace written to ${out.counterexample}`, `replay: ${replayCommandLine(out.counterexample, out.inject)}`);
  } else lines.push('all invariants hold');
  process.stdout.write(`${lines.join('\n')}\n`);
}
