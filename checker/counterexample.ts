// From a failing run to a saved counterexample: minimize the concrete steps, set each `expect` to the
// model's result, check that the trace fails again in a fresh process (state that survives `reset()`
// outside simulated memory once gave a 1-step trace that replayed clean), and only then write it.
// One path for `pkvm-check run` and for every property of the vitest suite.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MachineConfig } from '../types/config';
import type { Lockstep } from './lockstep';
import { minimize } from './minimize';
import { runSteps } from './sequence';
import type { Failure } from './suite-types';
import { encodeTrace, replayCommandLine, TRACE_FORMAT, traceFileName, writeTrace, type TraceFile } from './trace/file';
import type { TraceStep } from './vocabulary';
import { targetFlags, type TargetSpec } from './targets/spec';

export interface TraceContext {
  readonly config: MachineConfig;
  readonly inject: string | null;
  readonly seed: number | null;
  /** Where the trace goes (created if needed). */
  readonly outDir: string;
  /** The target it failed on; the fresh-process check and the replay command use it too. */
  readonly target?: TargetSpec;
}

export interface SavedCounterexample {
  /** The failure of the minimized steps. */
  readonly failure: Failure;
  readonly steps: readonly TraceStep[];
  /** The file written, or null when it was not (see `problem`). */
  readonly path: string | null;
  /** The trace's text, to print when it could not be written. */
  readonly text: string;
  /** Why nothing was written: the trace did not fail in a fresh process, or the write failed. */
  readonly problem: string | null;
}

const CLI = fileURLToPath(new URL('../bin/pkvm-check.js', import.meta.url));

/**
 * Replays the trace's text with `pkvm-check replay` in a new process; null when it fails there with
 * the same property, else what happened instead.
 */
export function freshProcessProblem(t: TraceFile, target?: TargetSpec): string | null {
  const dir = mkdtempSync(join(tmpdir(), 'pkvm-check-verify-'));
  try {
    const file = join(dir, traceFileName(t.failure?.property ?? 'trace', t.steps));
    writeFileSync(file, encodeTrace(t));
    const r = spawnSync(process.execPath, [CLI, 'replay', file, '--json', ...targetFlags(target)], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
    if (r.status !== 1) return `replayed in a fresh process it exited ${r.status ?? r.signal}${r.status === 0 ? ' (clean)' : `: ${r.stderr.trim().split('\n')[0]}`}`;
    const got = (JSON.parse(r.stdout) as { traces: { failure: { property: string } | null }[] }).traces[0]?.failure?.property;
    return got === t.failure?.property ? null : `replayed in a fresh process it fails with ${got}, not ${t.failure?.property}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes `t` after checking it in a fresh process; never throws for a disk that refuses it. */
export function saveTrace(t: TraceFile, outDir: string, target?: TargetSpec): { path: string | null; problem: string | null } {
  const flaky = freshProcessProblem(t, target);
  if (flaky !== null) return { path: null, problem: `flaky: the trace was not saved, ${flaky}` };
  try {
    return { path: writeTrace(outDir, t.failure?.property ?? 'trace', t), problem: null };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { path: null, problem: `cannot write the trace into ${outDir} (${err.code ?? err.message.split('\n')[0]})` };
  }
}

/**
 * The concrete steps with `expect` set to what the model says each should return: 0 or an errno. A
 * VM handle, a snapshot's address and a panic's entry count are not errnos, and get no `expect`.
 */
export function withExpectations(steps: readonly TraceStep[], modelResults: readonly number[]): TraceStep[] {
  return steps.map((s, i) => {
    const want = modelResults[i];
    return want === undefined || want > 0 || s.call === '__pkvm_init_vm' || s.call === 'hyp_panic' ? s : { ...s, expect: want };
  });
}

/**
 * Minimizes `steps` (which fail with `failure` on `ls`), then saves them. When the minimized steps
 * unexpectedly pass on re-run, the unminimized ones are kept and the problem said.
 */
export function saveCounterexample(ls: Lockstep, steps: readonly TraceStep[], failure: Failure, ctx: TraceContext): SavedCounterexample {
  const out = runSteps(ls, minimize(ls, steps, failure.property).steps);
  const kept = out.failure ? out : runSteps(ls, steps);
  const found = kept.failure ?? failure;
  const trace: TraceFile = { format: TRACE_FORMAT, config: ctx.config, inject: ctx.inject, seed: ctx.seed, steps: withExpectations(kept.steps, ls.modelResults), failure: found };
  const saved = kept.failure ? saveTrace(trace, ctx.outDir, ctx.target) : { path: null, problem: 'flaky: the failing steps passed when re-run from boot' };
  return { failure: found, steps: trace.steps, path: saved.path, text: encodeTrace(trace), problem: saved.problem };
}

/** What a failed property says about its trace: the replay command, or why there is none. */
export function traceReport(saved: SavedCounterexample, inject: string | null, target?: TargetSpec): string {
  if (saved.path !== null) return `counterexample (${saved.steps.length} steps): ${saved.path}\nreplay: ${replayCommandLine(saved.path, inject, target)}`;
  return `${saved.problem}; the trace:\n${saved.text}`;
}
