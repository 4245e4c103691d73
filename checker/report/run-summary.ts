// A finished run as the reports see it, with the fixed orders and commands both report formats share.
import { SUITE_NAMES, type SuiteResult } from '../suite-types';

export interface RunSummary {
  readonly ok: boolean;
  readonly seed: number;
  readonly inject: string | null;
  readonly suites: readonly SuiteResult[];
  readonly calls: number;
  readonly durationMs: number;
}

/** Suites in the fixed order ownership, snapshot, unwinder, whatever order they finished in. */
export const orderedSuites = (s: RunSummary): SuiteResult[] =>
  [...s.suites].sort((a, b) => SUITE_NAMES.indexOf(a.name) - SUITE_NAMES.indexOf(b.name));

/** The commands that re-run this run: the suite with the same seed (and bug, if one was injected). */
export function reproduceCommands(s: RunSummary): string[] {
  if (s.inject !== null) return [`npx pkvm-check run --seed ${s.seed} --inject ${s.inject}`];
  return [`PKVM_CHECK_SEED=${s.seed} npm test`, `npx pkvm-check run --seed ${s.seed}`];
}
