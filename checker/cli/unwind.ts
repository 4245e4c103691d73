// `pkvm-check unwind`: builds a hyp call chain on the simulated EL2 stack, panics, and prints what the
// host kernel would log (SEMANTICS §7). The unwind runs under the checker's watch, so an injected bug
// that would loop or stray ends with a one-line report on stderr and exit 1 instead of a hang.
import { PAGE_SIZES } from '../../hyp/stacktrace-layout';
import type { TraceFormat } from '../../hyp/stacktrace';
import type { UnwindArgs, UnwindMode } from '../../types/calls';
import { unwinderBugsFor } from '../bugs/catalog';
import { runHyp } from '../unwinder/run';
import { parseInject } from './inject';
import { UsageError, intFlag, parseFlags } from './usage';

const SCENARIOS = ['recursive_death', 'call_chain'];

function choice<T extends string>(flag: string, value: string | undefined, choices: readonly T[], dflt: T): T {
  if (value === undefined) return dflt;
  if (!(choices as readonly string[]).includes(value)) throw new UsageError(`--${flag}: expected ${choices.join(' or ')}, got "${value}"`);
  return value as T;
}

export async function unwindCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
    scenario: { type: 'string' },
    mode: { type: 'string' },
    'page-size': { type: 'string' },
    depth: { type: 'string' },
    seed: { type: 'string' },
    format: { type: 'string' },
    inject: { type: 'string' },
  });
  if (values.scenario === undefined) throw new UsageError(`--scenario: required (${SCENARIOS.join(' or ')})`);
  const scenario = choice('scenario', values.scenario, SCENARIOS, 'recursive_death');
  const mode = choice<UnwindMode>('mode', values.mode, ['protected', 'nonprotected'], 'protected');
  const page_size = intFlag('page-size', values['page-size'], 4096);
  if (!(PAGE_SIZES as readonly number[]).includes(page_size)) throw new UsageError(`--page-size: expected 4096, 16384 or 65536, got "${values['page-size']}"`);
  const format = choice<TraceFormat>('format', values.format, ['upstream', 'v5'], 'upstream');
  const bug = parseInject(values.inject, ['unwinder'], 'unwind');
  const args: UnwindArgs = {
    scenario,
    mode,
    page_size,
    depth: intFlag('depth', values.depth, 0),
    seed: intFlag('seed', values.seed, 0),
    corrupt: [],
  };
  const run = runHyp(args, unwinderBugsFor(bug?.id ?? null), format);
  process.stdout.write(run.lines.map((l) => `${l}\n`).join(''));
  if (!run.violation) return 0;
  process.stderr.write(`pkvm-check unwind: ${run.violation.property}: ${run.violation.message}\n`);
  return 1;
}
