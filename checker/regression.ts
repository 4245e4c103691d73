// The regression gate over saved traces: a trace must replay clean on the current implementation,
// and a trace found with an injected bug must still fail with that bug (else the suite's power to
// catch it has silently eroded).
import { replayTrace, type ReplayResult } from './replay';
import type { TraceFile } from './trace/file';

export type Replayer = (file: string, trace: TraceFile, inject: string | null | undefined) => ReplayResult;

/** What is wrong with one saved trace; empty when it guards as it should. */
export function gateProblems(file: string, trace: TraceFile, replay: Replayer = replayTrace): string[] {
  const problems: string[] = [];
  const clean = replay(file, trace, null);
  if (!clean.ok) problems.push(`${file}: fails on the correct implementation: ${clean.failure?.property} at step ${clean.failure?.step}: ${clean.failure?.message}`);
  if (trace.inject !== null) {
    const buggy = replay(file, trace, trace.inject);
    if (buggy.ok) problems.push(`${file}: no longer fails with bug ${trace.inject}: the suite lost its power to catch it`);
  }
  return problems;
}
