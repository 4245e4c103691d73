// A finished (or interrupted) run as the reports see it, with the fixed orders and commands both
// report formats share.
import { SUITE_NAMES, type SuiteName, type SuiteResult } from '../suite-types';
import { targetFlags, type TargetSpec } from '../targets/spec';

/** A test of the vitest suite that failed, as the summary of `npm test` lists it. */
export interface FailedTest {
  /** The test's file and full name. */
  readonly name: string;
  /** Its error message: for a property, the property, the step and the replay command. */
  readonly message: string;
}

export interface RunSummary {
  readonly ok: boolean;
  readonly seed: number;
  readonly inject: string | null;
  readonly suites: readonly SuiteResult[];
  readonly calls: number;
  readonly durationMs: number;
  /** The commands that re-run exactly this run (default: the seed with `npm test` and `pkvm-check run`). */
  readonly reproduce?: readonly string[];
  /** The signal that stopped the run before the end ("SIGINT"), when one did. */
  readonly interrupted?: string | null;
  /** The tests that failed, for the summary of `npm test` (whose failures are not all suites). */
  readonly failedTests?: readonly FailedTest[];
}

/** What a `pkvm-check run` was asked to do: everything its output depends on. */
export interface RunRequest {
  readonly suite: SuiteName | 'all';
  readonly runs: number;
  readonly maxSteps: number;
  readonly seed: number;
  readonly inject: string | null;
  /** The target the run drove (the simulation when absent). */
  readonly target?: TargetSpec;
  /** `--kernel`, when given. */
  readonly kernel?: string;
  /** `--config`'s file, when given (the run used that one machine instead of the rotation). */
  readonly config?: string;
}

/** Suites in the fixed order ownership, snapshot, unwinder, whatever order they finished in. */
export const orderedSuites = (s: RunSummary): SuiteResult[] =>
  [...s.suites].sort((a, b) => SUITE_NAMES.indexOf(a.name) - SUITE_NAMES.indexOf(b.name));

/** The one command that re-runs a `pkvm-check run`, every option that changes its sequences spelled out. */
export function runCommandLine(r: RunRequest): string {
  const inject = r.inject === null ? '' : ` --inject ${r.inject}`;
  const on = [...(r.config !== undefined ? ['--config', shellWord(r.config)] : []), ...(r.kernel ? ['--kernel', r.kernel] : []), ...targetFlags(r.target)].join(' ');
  return `npx pkvm-check run --suite ${r.suite} --runs ${r.runs} --max-steps ${r.maxSteps} --seed ${r.seed}${inject}${on ? ` ${on}` : ''}`;
}

/** A word as a POSIX shell reads it back: as is when plain, else single-quoted. */
const shellWord = (w: string): string => (/^[\w./:=+-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`);

/** The commands that re-run this run. */
export function reproduceCommands(s: RunSummary): string[] {
  if (s.reproduce) return [...s.reproduce];
  if (s.inject !== null) return [`npx pkvm-check run --seed ${s.seed} --inject ${s.inject}`];
  return [`PKVM_CHECK_SEED=${s.seed} npm test`, `npx pkvm-check run --seed ${s.seed}`];
}
