// Shared CLI plumbing: usage errors and strict flag parsing (one line, exit 2, nothing written).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InputError } from '../vocabulary';

export const USAGE = `usage:
  pkvm-check run [--suite ownership|snapshot|unwinder|all] [--runs N] [--seed X] [--max-steps K] [--inject BUG] [--out DIR] [--json]
  pkvm-check replay FILE... [--inject BUG|none] [--json]
  pkvm-check bugs [--json]
  pkvm-check explore [--pages P] [--depth D] [--vms V] [--gfns G] [--max-pins K] [--calls LIST] [--no-symmetry] [--model-only] [--inject BUG] [--json]
  pkvm-check unwind --scenario NAME [--mode protected|nonprotected] [--page-size 4096|16384|65536] [--depth N] [--seed X] [--format upstream|v5] [--inject BUG]
  pkvm-check bench [--json]`;

export class UsageError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parses flags strictly; unknown flags and missing values become a UsageError. */
export function parseFlags<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals });
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]);
  }
}

/** A whole number flag in [min, max]. */
export function intFlag(name: string, value: string | undefined, dflt: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return dflt;
  if (!/^(0|[1-9][0-9]*|0x[0-9a-fA-F]+)$/.test(value)) throw new UsageError(`--${name}: expected a whole number, got "${value}"`);
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name}: expected a number from ${min} to ${max}, got "${value}"`);
  return n;
}
