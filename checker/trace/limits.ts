// Resource caps on what a trace file may ask for, so a hostile or corrupt file is a one-line error
// instead of minutes of work and gigabytes of memory. Each cap is raised through an environment
// variable (README, "Limits"); a cap's error message names its variable.
import { InputError } from '../vocabulary';

export interface Limit {
  /** The environment variable that raises (or lowers) the cap. */
  readonly env: string;
  readonly dflt: number;
  /** What is counted, for the message: "bytes", "steps", "pages of memory". */
  readonly unit: string;
}

/** Size of a trace file: 16 MiB holds about 100,000 steps. */
export const MAX_TRACE_BYTES: Limit = { env: 'PKVM_CHECK_MAX_TRACE_BYTES', dflt: 16 * 2 ** 20, unit: 'bytes' };
/** Steps in one trace: a saved counterexample has a handful, a deep run's at most a few hundred. */
export const MAX_TRACE_STEPS: Limit = { env: 'PKVM_CHECK_MAX_TRACE_STEPS', dflt: 100_000, unit: 'steps' };
/** Simulated memory of a trace's machine: 4 GiB (2^20 pages of 4 KiB), the bench's largest machine. */
export const MAX_MEMORY_PAGES: Limit = { env: 'PKVM_CHECK_MAX_MEMORY_PAGES', dflt: 2 ** 20, unit: 'pages of memory' };

/** The cap in force: the environment's whole number if it names one, else the default. */
export function limit(l: Limit): number {
  const raw = process.env[l.env];
  if (raw === undefined || raw === '') return l.dflt;
  if (!/^[1-9][0-9]*$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new InputError(`${l.env}: expected a positive whole number, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

/** Throws the one-line error for `what` being `n` when the cap is lower. */
export function checkLimit(l: Limit, n: number, what: string): void {
  const cap = limit(l);
  if (n > cap) throw new InputError(`${what}: ${n} ${l.unit}, over the limit of ${cap} (raise it with ${l.env}=N)`);
}
