// Corruptions of the EL2 stacks and of the stacktrace buffer, aimed at what a scenario really built:
// its frame records, its stacks' edges, the guard page. Each kind targets one of the unwinder's rules.
import fc from 'fast-check';
import { OVERFLOW_STACK_SIZE, hypStackBase, overflowStackBase, type NvheLayout } from '../../hyp/stacktrace-layout';
import type { StackCorruption, UnwindArgs } from '../../types/calls';
import { buildScenario, targetBytes } from './scenario';

/** A frame record of the built chain: on which stack, at which offset from that stack's base. */
export interface BuiltRecord {
  readonly stack: 'hyp' | 'overflow';
  readonly off: number;
  readonly addr: bigint;
}

/** What the generators know of a scenario once built (without corruptions). */
export interface ScenarioFacts {
  readonly layout: NvheLayout;
  readonly records: readonly BuiltRecord[];
  /** The return addresses (lr words, as stored) of those records. */
  readonly lrs: readonly bigint[];
  /** hyp_panic's record sits on the hyp stack's lowest 16 bytes. */
  readonly fillsStack: boolean;
}

export function scenarioFacts(args: UnwindArgs): ScenarioFacts {
  const sc = buildScenario(args);
  const base = { hyp: hypStackBase(sc.layout), overflow: overflowStackBase(sc.layout) };
  const records = sc.cpu.records.map((r) => ({ stack: r.stack, off: Number(r.addr - base[r.stack]), addr: r.addr }));
  const lrs = records.map((r) => targetBytes(sc, r.stack).getBigUint64(r.off + 8, true));
  return { layout: sc.layout, records, lrs, fillsStack: sc.panic.fp === base.hyp };
}

export const CORRUPTION_KINDS = [
  'random-word',
  'cycle',
  'overlap',
  'back-into-left-stack',
  'misaligned',
  'wrapping',
  'straddle',
  'guard',
  'buffer-fill',
  'buffer-word',
] as const;
export type CorruptionKind = (typeof CORRUPTION_KINDS)[number] | 'full-ladder';

const hex = (v: bigint) => `0x${BigInt.asUintN(64, v).toString(16)}`;
const u64Arb = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const TOP = 1n << 64n;

/** Overwrites the fp word of a record. */
const setFp = (r: BuiltRecord, v: bigint): StackCorruption => ({ stack: r.stack, offset: r.off, value: hex(v) });
const setLr = (r: BuiltRecord, v: bigint): StackCorruption => ({ stack: r.stack, offset: r.off + 8, value: hex(v) });

/** One arbitrary per kind; `null` when the scenario offers no target for it. */
export function corruptionArbs(f: ScenarioFacts, isProtected: boolean): Partial<Record<CorruptionKind, fc.Arbitrary<StackCorruption[]>>> {
  const l = f.layout;
  const P = BigInt(l.page_size);
  const hypLow = hypStackBase(l);
  const ovfLow = overflowStackBase(l);
  const N = l.stacktrace_entries;
  const rec = fc.constantFrom(...f.records);
  const hypRecs = f.records.filter((r) => r.stack === 'hyp');
  const ovfRecs = f.records.filter((r) => r.stack === 'overflow');
  const lr = fc.constantFrom(...f.lrs);
  const ovfSlot = fc.nat(OVERFLOW_STACK_SIZE / 16 - 1).map((k) => ovfLow + 16n * BigInt(k));
  const arbs: Partial<Record<CorruptionKind, fc.Arbitrary<StackCorruption[]>>> = {
    'random-word': fc.tuple(rec, fc.boolean(), u64Arb).map(([r, isLr, v]) => [isLr ? setLr(r, v) : setFp(r, v)]),
    // A record pointing at itself or further down its own stack: a cycle unless fp must rise.
    cycle: rec.chain((r) => fc.constantFrom(...f.records.filter((t) => t.stack === r.stack && t.addr <= r.addr)).map((t) => [setFp(r, t.addr)])),
    // A record 8 bytes above the one just read, overlapping it: the kernel consumed those bytes.
    overlap: rec.map((r) => [setFp(r, r.addr + 8n)]),
    misaligned: fc.tuple(rec, rec, fc.integer({ min: 1, max: 7 })).map(([r, t, d]) => [setFp(r, t.addr + BigInt(d))]),
    // fp + 16 wraps past 2^64 (into low addresses): the record is in no stack.
    wrapping: fc.tuple(rec, fc.constantFrom(TOP - 8n, TOP - 16n, TOP - 1n, TOP - 24n)).map(([r, v]) => [setFp(r, v)]),
    // A record whose 16 bytes cross a stack's top or bottom edge.
    straddle: fc
      .tuple(rec, fc.constantFrom(hypLow + P - 8n, hypLow - 8n, ovfLow + BigInt(OVERFLOW_STACK_SIZE) - 8n, ovfLow - 8n))
      .map(([r, v]) => [setFp(r, v)]),
    // A pointer into the unmapped guard page below the hyp stack.
    guard: fc.tuple(rec, fc.nat(l.page_size / 16 - 1)).map(([r, k]) => [setFp(r, hypLow - P + 16n * BigInt(k))]),
  };
  if (hypRecs.length > 0)
    // A hyp-stack record leading to the overflow stack, whose record (an existing one, or one written
    // there) leads back into the hyp stack: legal once at most, since a stack left is never re-entered.
    arbs['back-into-left-stack'] = fc
      .tuple(fc.constantFrom(...hypRecs), ovfRecs.length > 0 ? fc.oneof(fc.constantFrom(...ovfRecs.map((r) => r.addr)), ovfSlot) : ovfSlot, fc.constantFrom(...hypRecs), lr)
      .map(([r, x, back, ret]) => {
        const out = [setFp(r, x)];
        if (!ovfRecs.some((o) => o.addr === x)) {
          const slot = { stack: 'overflow' as const, off: Number(x - ovfLow), addr: x };
          out.push(setFp(slot, back.addr), setLr(slot, ret));
        }
        return out;
      });
  if (isProtected) {
    const nonzero = fc.oneof(lr, u64Arb.map((v) => v | 1n));
    // Non-zero words over the buffer from entry i on: from 0, no terminator is left at all.
    arbs['buffer-fill'] = fc
      .tuple(fc.oneof(fc.constant(0), fc.nat(N - 1)), nonzero, fc.constantFrom(0, 8, 16))
      .map(([i, v, step]) => [{ stack: 'stacktrace', offset: 8 * i, value: hex(v), count: N - i, ...(step ? { step } : {}) }]);
    arbs['buffer-word'] = fc
      .tuple(fc.nat(N - 1), fc.oneof(fc.constant(0n), nonzero))
      .map(([i, v]) => [{ stack: 'stacktrace', offset: 8 * i, value: hex(v) }]);
  }
  return arbs;
}

/**
 * Both stacks made one unbroken chain of 16-byte records: from the hyp stack's bottom to its top,
 * then into the overflow stack from record `skip` to its top. With hyp_panic's record at the hyp
 * stack's bottom, the unwind finds N - skip entries: exactly what the buffer cannot all hold.
 */
export function fullLadder(f: ScenarioFacts, skip: number, lr: bigint): StackCorruption[] {
  const l = f.layout;
  const hyp = l.page_size / 16;
  const ovf = OVERFLOW_STACK_SIZE / 16 - skip;
  const ovfFirst = overflowStackBase(l) + 16n * BigInt(skip);
  return [
    { stack: 'hyp', offset: 0, value: hex(hypStackBase(l) + 16n), count: hyp, stride: 16, step: 16 },
    { stack: 'hyp', offset: 8, value: hex(lr), count: hyp, stride: 16 },
    { stack: 'hyp', offset: l.page_size - 16, value: hex(ovfFirst) },
    { stack: 'overflow', offset: 16 * skip, value: hex(ovfFirst + 16n), count: ovf, stride: 16, step: 16 },
    { stack: 'overflow', offset: 16 * skip + 8, value: hex(lr), count: ovf, stride: 16 },
  ];
}
