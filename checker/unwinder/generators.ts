// Generators of unwinder scenarios: `hyp_panic` steps with call chains of random depth and shape
// (deep recursion that overflows, chains that fill the stack exactly), all page sizes, both modes,
// both printed formats, and corruptions aimed at the frame records the chain really pushed.
import fc from 'fast-check';
import { PAGE_SIZES } from '../../hyp/stacktrace-layout';
import type { UnwindArgs, UnwindFormat, UnwindMode } from '../../types/calls';
import type { TraceStep } from '../vocabulary';
import { CORRUPTION_KINDS, corruptionArbs, fullLadder, scenarioFacts, type CorruptionKind } from './corruptions';

/** A call_chain depth larger than any stack holds: the chain fills the hyp stack exactly. */
export const FILL_DEPTH = 1 << 20;

/** A generated step, with the corruption kinds that went into it (for measuring the generator). */
export interface UnwindCase {
  readonly step: TraceStep;
  readonly kinds: readonly CorruptionKind[];
}

const mode = fc.constantFrom<UnwindMode>('protected', 'nonprotected');
const pageSize = fc.oneof(
  { weight: 6, arbitrary: fc.constant<number>(PAGE_SIZES[0]) },
  { weight: 3, arbitrary: fc.constant<number>(PAGE_SIZES[1]) },
  { weight: 1, arbitrary: fc.constant<number>(PAGE_SIZES[2]) },
);
const seed = fc.nat(0xffffffff);

const recursiveDeath = fc.record({
  scenario: fc.constant('recursive_death'),
  mode,
  page_size: pageSize,
  depth: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: 1, max: 6 }) }),
  seed,
});

const callChain = fc.record({
  scenario: fc.constant('call_chain'),
  mode,
  page_size: pageSize,
  depth: fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: 8 }) },
    { weight: 2, arbitrary: fc.integer({ min: 9, max: 200 }) },
    { weight: 2, arbitrary: fc.constant(FILL_DEPTH) },
  ),
  seed,
});

type Base = Omit<UnwindArgs, 'corrupt'>;
const base: fc.Arbitrary<Base> = fc.oneof(recursiveDeath, callChain);

const toCase = (b: Base, parts: readonly (readonly [CorruptionKind, UnwindArgs['corrupt']])[]): UnwindCase => ({
  step: { call: 'hyp_panic', args: { ...b, corrupt: parts.flatMap(([, c]) => c) } },
  kinds: parts.map(([k]) => k),
});

/** One to three corruptions of kinds the scenario offers targets for. */
const corrupted: fc.Arbitrary<UnwindCase> = base.chain((b) => {
  const arbs = corruptionArbs(scenarioFacts({ ...b, corrupt: [] }), b.mode === 'protected');
  const kinds = CORRUPTION_KINDS.filter((k) => arbs[k] !== undefined);
  const one = fc.constantFrom(...kinds).chain((k) => arbs[k]!.map((c) => [k, c] as const));
  return fc.array(one, { minLength: 1, maxLength: 3 }).map((parts) => toCase(b, parts));
});

/**
 * A chain that fills the hyp stack exactly, then both stacks rewritten into one unbroken chain of
 * records: the unwind finds N, N - 1 or N - 2 entries, at the edge of what the buffer holds. Mostly in
 * protected mode, where that edge is.
 */
const ladderMode = fc.constantFrom<UnwindMode>('protected', 'protected', 'protected', 'nonprotected');
const ladder: fc.Arbitrary<UnwindCase> = fc.record({ mode: ladderMode, page_size: pageSize, seed }).chain((m) => {
  const b: Base = { ...m, scenario: 'call_chain', depth: FILL_DEPTH };
  const facts = scenarioFacts({ ...b, corrupt: [] });
  const buffer = corruptionArbs(facts, b.mode === 'protected')['buffer-fill'];
  return fc
    .tuple(fc.constantFrom(0, 0, 0, 1, 2), fc.constantFrom(...facts.lrs), buffer ? fc.option(buffer, { nil: null, freq: 3 }) : fc.constant(null))
    .map(([skip, lr, fill]) =>
      toCase(b, [['full-ladder', fullLadder(facts, skip, lr)] as const, ...(fill ? [['buffer-fill', fill] as const] : [])]),
    );
});

const scenarioCase: fc.Arbitrary<UnwindCase> = fc.oneof(
  { weight: 6, arbitrary: base.map((b) => toCase(b, [])) },
  { weight: 11, arbitrary: corrupted },
  { weight: 3, arbitrary: ladder },
);

/** The format the host prints in: upstream's two cases in three, the v4/v5 series' in one (it shrinks to upstream). */
const format = fc.oneof({ weight: 2, arbitrary: fc.constant<UnwindFormat>('upstream') }, { weight: 1, arbitrary: fc.constant<UnwindFormat>('v5') });

/**
 * A scenario, then its format: drawn last, so that a case's other draws are those of a case without
 * it. Upstream, the default, is left absent, as a trace file leaves it.
 */
export const unwindCaseArb: fc.Arbitrary<UnwindCase> = fc
  .tuple(scenarioCase, format)
  .map(([c, f]) => (f === 'upstream' || c.step.call !== 'hyp_panic' ? c : { ...c, step: { ...c.step, args: { ...c.step.args, format: f } } }));

/** `hyp_panic` steps for the unwinder suite. */
export const unwindStepArb: fc.Arbitrary<TraceStep> = unwindCaseArb.map((c) => c.step);
