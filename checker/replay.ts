// Replays a trace on model and hyp, step by step, and says what each step did to the pages it
// names: the way a kernel developer reads a counterexample.
import { hostState, hypState, page, type State } from '../model/state';
import type { Failure } from './suite-types';
import { footprint, type Lockstep } from './lockstep';
import { makeLockstep } from './suites';
import type { TraceFile } from './trace/file';
import { formatCall, formatResult, hex, InputError, resolveStep } from './vocabulary';
import { pageKey } from './abstraction';
import { SIM, type TargetSpec } from './targets/spec';
import { P } from './properties';

export interface ReplayResult {
  readonly ok: boolean;
  readonly steps: number;
  readonly failure: Failure | null;
  /** The human-readable replay, one entry per line. */
  readonly lines: string[];
}

/** Pages shown per step for a range. */
const SHOWN = 4;


function describe(model: State, pfn: number): string {
  const p = page(model, pfn);
  const extra = [p.ffa ? 'lent to ffa' : '', p.guests ? `${p.guests} guest mapping(s)` : '', p.pins ? `${p.pins} pin(s)` : '', p.owner === 'hyp' && p.use !== 'free' ? `used by ${p.use === 'hyp' ? 'hyp' : `vm ${hex(p.use)}`}` : '']
    .filter(Boolean)
    .join(', ');
  return `host ${hostState(p)}, hyp ${hypState(p)}${extra ? `, ${extra}` : ''}`;
}

/** Runs a trace; `inject` overrides the trace's own bug when not undefined. */
export function replayTrace(file: string, trace: TraceFile, inject: string | null | undefined, target: TargetSpec = SIM): ReplayResult {
  const bug = inject === undefined ? trace.inject : inject;
  // A replay shows each step's own result: on the kernel, one round trip per call.
  const ls: Lockstep = makeLockstep(bug, trace.config, target.name === 'kernel' ? { ...target, stepwise: true } : target);
  try {
    return replayOn(ls, file, trace, bug);
  } finally {
    ls.close();
  }
}

function replayOn(ls: Lockstep, file: string, trace: TraceFile, bug: string | null): ReplayResult {
  ls.reset();
  const on = ls.target.name === 'sim' ? '' : ` on the ${ls.target.name}`;
  const lines = [`${file}: ${trace.steps.length} steps${bug ? `, with bug ${bug}` : ', correct implementation'}${on}${trace.seed !== null ? `, seed ${trace.seed}` : ''}`];
  lines.push(...ls.target.notes().map((l) => `  ${l}`));
  let failure: Failure | null = null;
  for (let i = 0; i < trace.steps.length && !failure; i++) {
    const step = trace.steps[i];
    let pages: number[] = [];
    let before: string[] = [];
    try {
      pages = footprint(ls.model, resolveStep(step, ls.results)).pages.slice(0, SHOWN);
      before = pages.map((p) => describe(ls.model, p));
      failure = ls.step(step, i);
    } catch (e) {
      if (e instanceof InputError) throw new InputError(`${file}: step ${i + 1}: ${e.message}`);
      failure = { property: P.noCrash, step: i + 1, message: `hyp threw: ${(e as Error).message}` };
    }
    const expect = step.expect === undefined ? '' : `   (expect ${formatResult(step.expect)})`;
    const result = ls.results[i] ?? 0;
    const shown = step.call === 'hyp_panic' && result >= 0 ? `${result} entries printed` : formatResult(result);
    lines.push(`${String(i + 1).padStart(4)}  ${formatCall(step)} = ${shown}${expect}`);
    lines.push(...ls.target.report().map((l) => `        | ${l}`));
    pages.forEach((p, j) => {
      const after = describe(ls.model, p);
      lines.push(`        pfn ${hex(p)}: ${before[j] === after ? after : `${before[j]}  ->  ${after}`}`);
    });
  }
  failure ??= ls.finish();
  if (failure) {
    lines.push(`  FAIL at step ${failure.step}: ${failure.property}: ${failure.message}`);
    lines.push(...affected(ls, failure));
  } else lines.push('  ok: results agree, every expect holds, every property holds');
  return { ok: failure === null, steps: trace.steps.length, failure, lines };
}

/**
 * At the failing step: the model's and the target's view of every page the message names, and what
 * the target adds (a ptdump of the host stage-2 over the 2 MiB around it, or the raw probe).
 */
function affected(ls: Lockstep, f: Failure): string[] {
  const pfns = [...new Set([...f.message.matchAll(/pfn (0x[0-9a-f]+)/g)].map((m) => Number(m[1])))].slice(0, SHOWN);
  const seen = new Set<string>();
  return pfns.flatMap((pfn) => {
    const { found, detail } = ls.target.explain(pfn);
    const fresh = detail.filter((l) => !seen.has(l));
    for (const l of fresh) seen.add(l);
    return [`        pfn ${hex(pfn)} expected (model): ${pageKey(page(ls.model, pfn))}`, `        pfn ${hex(pfn)} found (${ls.target.name === 'sim' ? 'hyp' : ls.target.name}):${' '.repeat(ls.target.name === 'sim' ? 6 : 3)}${found}`, ...fresh.map((l) => `        ${l}`)];
  });
}
