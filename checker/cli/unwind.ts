// `pkvm-check unwind`: builds a hyp call chain on the simulated EL2 stack, panics, and prints what the
// host kernel would log (docs/semantics.md §9). The unwind runs under the checker's watch, so an injected bug
// that would loop or stray ends with a one-line report on stderr and exit 1 instead of a hang.
// `--target kernel` panics the real hypervisor the same way instead (checker/kernel/unwind.ts).
// `--kernel V` names the pKVM simulated; the unwinder is the same in 6.12 and 6.16 (docs/semantics.md
// §9), so the version changes no line of the log: it is printed first, as a header.
import { PAGE_SIZES } from '../../hyp/stacktrace-layout';
import type { TraceFormat } from '../../hyp/stacktrace';
import type { UnwindArgs, UnwindMode } from '../../types/calls';
import type { KernelVersion } from '../../types/kernel';
import { unwinderBugsFor } from '../bugs/catalog';
import { formatKernelUnwind, MAX_KERNEL_DEPTH, runKernelUnwind, type KernelScenario } from '../kernel/unwind';
import { runHyp } from '../unwinder/run';
import { parseInject } from './inject';
import { parseKernelFlag, parseTarget, TARGET_FLAGS } from './target';
import { UsageError, intFlag, parseFlags } from './usage';

const SCENARIOS: readonly KernelScenario[] = ['recursive_death', 'call_chain'];
/** call_chain's frames on the kernel target when --depth is not given. */
const KERNEL_DEFAULT_DEPTH = 8;

function choice<T extends string>(flag: string, value: string | undefined, choices: readonly T[], dflt: T): T {
  if (value === undefined) return dflt;
  if (!(choices as readonly string[]).includes(value)) throw new UsageError(`--${flag}: expected ${choices.join(' or ')}, got "${value}"`);
  return value as T;
}

/** The first line of `unwind --kernel V` on the simulation: which pKVM, and that the unwinder is common. */
export const unwindHeader = (kernel: KernelVersion): string =>
  `Simulated pKVM, Linux ${kernel} (the nVHE unwinder is the same in 6.12 and 6.16: docs/semantics.md §9)`;

export async function unwindCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
    scenario: { type: 'string' },
    mode: { type: 'string' },
    'page-size': { type: 'string' },
    depth: { type: 'string' },
    seed: { type: 'string' },
    format: { type: 'string' },
    inject: { type: 'string' },
    ...TARGET_FLAGS,
  });
  if (values.scenario === undefined) throw new UsageError(`--scenario: required (${SCENARIOS.join(' or ')})`);
  const scenario = choice('scenario', values.scenario, SCENARIOS, 'recursive_death');
  const mode = choice<UnwindMode>('mode', values.mode, ['protected', 'nonprotected'], 'protected');
  const page_size = intFlag('page-size', values['page-size'], 4096);
  if (!(PAGE_SIZES as readonly number[]).includes(page_size)) throw new UsageError(`--page-size: expected 4096, 16384 or 65536, got "${values['page-size']}"`);
  const format = choice<TraceFormat>('format', values.format, ['upstream', 'v5'], 'upstream');
  const bug = parseInject(values.inject, ['unwinder'], 'unwind');
  if (values.target === 'kernel') {
    // The real kernel: one 4 KiB-page image, upstream's format, no unwinder bugs as kernel patches.
    if (bug) throw new UsageError(`--inject: ${bug.id} is a bug of the simulated unwinder; the kernel target has none`);
    if (format !== 'upstream') throw new UsageError('--format: the kernel target prints what 6.12 prints (upstream)');
    if (page_size !== 4096) throw new UsageError('--page-size: the kernel target runs a 4096-byte-page image');
    if (scenario === 'recursive_death' && values.depth !== undefined) throw new UsageError('--depth: recursive_death on the kernel target recurses until the guard page; --depth is for call_chain');
    const depth = scenario === 'call_chain' ? intFlag('depth', values.depth, KERNEL_DEFAULT_DEPTH, 1, MAX_KERNEL_DEPTH) : 0;
    parseKernelFlag(values); // the kernel target runs 6.12: --kernel 6.16 is refused
    const target = parseTarget(values, null);
    if (target.name !== 'kernel') throw new Error('parseTarget did not give the kernel target');
    const opts = { imageDir: target.imageDir, scenario, mode, depth };
    const kernel = runKernelUnwind(opts);
    process.stdout.write(formatKernelUnwind(opts, kernel));
    const failed = kernel.properties.find((p) => !p.ok);
    if (!failed && !kernel.simViolation) return 0;
    process.stderr.write(`pkvm-check unwind: ${failed ? `${failed.property}: ${failed.detail}` : `the simulation: ${kernel.simViolation}`}\n`);
    return 1;
  }
  parseTarget(values, null); // refuses --kernel-src without --target kernel, and a misspelt target
  const kernel = parseKernelFlag(values);
  const args: UnwindArgs = {
    scenario,
    mode,
    page_size,
    depth: intFlag('depth', values.depth, 0),
    seed: intFlag('seed', values.seed, 0),
    corrupt: [],
    format,
  };
  const run = runHyp(args, unwinderBugsFor(bug?.id ?? null));
  const header = kernel === undefined ? [] : [unwindHeader(kernel)];
  process.stdout.write([...header, ...run.lines].map((l) => `${l}\n`).join(''));
  if (!run.violation) return 0;
  process.stderr.write(`pkvm-check unwind: ${run.violation.property}: ${run.violation.message}\n`);
  return 1;
}
