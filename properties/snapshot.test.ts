// The host stage-2 snapshot (SEMANTICS §5): model and hyp agree over random host stage-2 shapes and
// adversarial descriptors, donated pages stay out of the host's reach at every internal step, the
// copy's ptdump equals the host's, the generators reach the boundaries, and every known snapshot bug
// is caught.
import { describe, expect, test } from 'vitest';
// fast-check through @fast-check/vitest's re-export; properties run with fc.check (assertTraced) under a plain
// vitest test, because test.prop appends its seed to the test name.
import { fc } from '@fast-check/vitest';
import { DEFAULT_CONFIG } from '../types/config';
import { hostState, page, type State } from '../model/state';
import { Lockstep } from '../checker/lockstep';
import { snapshotHandler } from '../checker/snapshot/handler';
import { resolveSnapshotStep, scenarioOf, snapshotStepArb } from '../checker/snapshot/generators';
import { resolveShapeStep, shapeStepArb } from '../checker/snapshot/shapes';
import { tablePagesAfter } from '../checker/snapshot/harness';
import { snapshotPgtable } from '../checker/snapshot/copy';
import { SNAPSHOT_STATS } from '../checker/snapshot/stats';
import { SNAPSHOT_BUGS } from '../checker/bugs/snapshot';
import type { HypBug } from '../checker/bugs/ownership';
import type { Failure } from '../checker/suite-types';
import type { TraceStep } from '../checker/vocabulary';
import { ptdump } from '../hyp/ptdump';
import { SEED } from './seed';
import { assertTraced } from './traced';
import { snapshotOf, type SnapshotStep } from '../hyp/snapshot';
import { P } from '../checker/properties';

const handlers = { __pkvm_host_stage2_snapshot: snapshotHandler };
const config = DEFAULT_CONFIG;

/** One step of a sequence: a snapshot (about a third of the time) or a shape-building call. */
const stepArb = fc.record({ snap: fc.nat(2).map((n) => n === 0), draws: snapshotStepArb(config) });
const seqArb = fc.array(stepArb, { minLength: 1, maxLength: 16 });
type Seq = readonly { readonly snap: boolean; readonly draws: readonly number[] }[];

function resolve(ls: Lockstep, s: Seq[number]): TraceStep {
  return s.snap ? resolveSnapshotStep(s.draws, ls.model, config) : resolveShapeStep(s.draws, ls.model, config);
}

/** Runs a sequence from boot; the first failure, including the end-of-sequence checks. */
function runSeq(ls: Lockstep, seq: Seq, record: (step: TraceStep) => void = () => undefined): Failure | null {
  ls.reset();
  for (let i = 0; i < seq.length; i++) {
    const step = resolve(ls, seq[i]);
    record(step);
    const f = ls.step(step, i);
    if (f) return f;
  }
  return ls.finish();
}

/** `n` host-owned pages not in `exclude`, scanning memory from `from`. */
function freshPages(model: State, n: number, from: number, exclude: Set<number>): number[] {
  const [first, nr] = config.memory[0];
  const out: number[] = [];
  for (let k = 0; k < nr && out.length < n; k++) {
    const p = first + ((from - first + k) % nr);
    if (!exclude.has(p) && hostState(page(model, p)) === 'OWNED') out.push(p);
  }
  return out;
}

describe('host stage-2 snapshot', () => {
  const ls = new Lockstep(config, [], handlers);

  test('model and hyp agree; donated pages are never reachable by the host', () => {
    assertTraced(
      seqArb,
      (seq, record) => {
        const f = runSeq(ls, seq, record);
        expect(f, f ? `${f.property} at step ${f.step}: ${f.message}` : '').toBeNull();
      },
      { seed: SEED, numRuns: 120 },
    );
  });

  test("the copy's ptdump equals the host stage-2's ptdump at the time of the copy", () => {
    let checked = 0;
    assertTraced(
      fc.tuple(fc.array(shapeStepArb, { maxLength: 24 }), fc.nat({ max: 4095 })),
      ([shape, at], record) => {
        ls.reset();
        shape.forEach((d, i) => {
          const step = resolveShapeStep(d, ls.model, config);
          record(step);
          expect(ls.step(step, i)).toBeNull();
        });
        // A well-formed call with exactly as many memcache pages as the copy will need.
        const [desc, pgd, pgd2, used] = freshPages(ls.model, 4, config.memory[0][0] + at, new Set());
        if (pgd2 !== pgd + 1) return; // not contiguous here: nothing to check for this draw
        const taken = new Set([desc, pgd, pgd2, used]);
        let mc: number[] = [];
        for (let n = 0; n < 64 && mc.length < tablePagesAfter(ls.hyp, [...taken, ...mc]); n++)
          mc = freshPages(ls.model, tablePagesAfter(ls.hyp, [...taken, ...mc]) + n, used + 1, taken);
        let hostDump: string[] = [];
        const s = snapshotOf(ls.hyp);
        const teardown = s.snapshot_teardown.bind(s);
        s.snapshot_teardown = (setup) => {
          hostDump = ptdump(ls.hyp.host_mmu);
          teardown(setup);
        };
        try {
          const step: TraceStep = {
            call: '__pkvm_host_stage2_snapshot',
            args: { desc: desc * 4096, pgd: pgd * 4096, pgd_pages: 2, mc: mc.map((p) => p * 4096), mc_nr_pages: mc.length, mc_tail: 0, used: used * 4096, num_used_pages: 1, used_pages_indx: 0 },
          };
          record(step);
          expect(ls.step(step, shape.length)).toBeNull();
        } finally {
          s.snapshot_teardown = teardown;
        }
        const result = ls.results[shape.length];
        expect(result).toBe(pgd * 4096);
        const copy = ptdump(snapshotPgtable(ls.hyp, result));
        expect(copy.length).toBeGreaterThan(0);
        expect(copy.some((l) => l.endsWith('owner=hyp'))).toBe(true);
        expect(copy).toEqual(hostDump);
        checked++;
      },
      { seed: SEED, numRuns: 40 },
    );
    expect(checked).toBeGreaterThan(20);
  });

  test('ptdump prints one line per run: type, permissions, attributes, state or owner', () => {
    ls.reset();
    const steps: TraceStep[] = [
      { call: 'host_access', args: { pfn: 0x40100, write: true } },
      { call: 'host_access', args: { pfn: 0x3ff00, write: false } },
      { call: '__pkvm_host_share_hyp', args: { pfn: 0x40400 } },
      { call: 'host_access', args: { pfn: 0x40401, write: false } },
    ];
    steps.forEach((st, i) => expect(ls.step(st, i)).toBeNull());
    const [first, nr] = ls.hyp.layout.carveout;
    const hexPa = (pfn: number) => `0x${(pfn * 4096).toString(16).padStart(16, '0')}`;
    expect(ptdump(ls.hyp.host_mmu)).toEqual([
      '0x0000000000000000-0x0000000040000000  1G  BLOCK  RWNX  DEVICE  OWNED',
      '0x0000000040000000-0x0000000040200000  2M  BLOCK  RWx  NORMAL  OWNED',
      '0x0000000040400000-0x0000000040401000  4K  PAGE  RWx  NORMAL  SHARED_OWNED',
      '0x0000000040401000-0x0000000040402000  4K  PAGE  RWx  NORMAL  OWNED',
      `${hexPa(first)}-${hexPa(first + nr)}  ${nr * 4}K  INVALID  ---  -  owner=hyp`,
    ]);
  });

  test('hyp reports every internal step: each donation, each copied table, teardown', () => {
    ls.reset();
    const stages: SnapshotStep[] = [];
    const s = snapshotOf(ls.hyp);
    const call = s.__pkvm_host_stage2_snapshot.bind(s);
    // Chains onto the hook the handler installs, for the whole call.
    s.__pkvm_host_stage2_snapshot = (desc) => {
      const hook = s.snapshot_hook;
      s.snapshot_hook = (stage) => {
        stages.push(stage);
        hook?.(stage);
      };
      try {
        return call(desc);
      } finally {
        s.snapshot_hook = hook;
      }
    };
    try {
      const mc = [0x40010, 0x40011, 0x40012, 0x40013].map((p) => p * 4096);
      const step: TraceStep = {
        call: '__pkvm_host_stage2_snapshot',
        args: { desc: 0x40003000, pgd: 0x40004000, pgd_pages: 2, mc, mc_nr_pages: 4, mc_tail: 0, used: 0x40006000, num_used_pages: 2, used_pages_indx: 0 },
      };
      expect(ls.step(step, 0)).toBeNull();
    } finally {
      s.__pkvm_host_stage2_snapshot = call;
    }
    // Descriptor, PGD, four memcache pages, the array; then the copy's tables; then the teardown.
    expect(stages.filter((x) => x.kind === 'donated')).toHaveLength(7);
    let tables = 0;
    snapshotPgtable(ls.hyp, 0x40004000).walk(0, ls.hyp.host_mmu.ia_pages, { tablePre: () => tables++ });
    expect(tables).toBeGreaterThan(0);
    expect(stages.filter((x) => x.kind === 'copied-table')).toHaveLength(tables);
    expect(stages.slice(-2).map((x) => x.kind)).toEqual(['teardown-begin', 'teardown-end']);
    expect(ls.results[0]).toBe(0x40004000);
  });

  test('the default generator overruns the used-pages array and builds cyclic memcache lists (>= 3% each)', () => {
    const rng = fc.sample(fc.array(fc.nat({ max: 0xffffffff }), { minLength: 200, maxLength: 200 }), { seed: 42, numRuns: 1 })[0];
    let r = 0;
    const next = () => rng[r++ % rng.length] ^ (r * 0x9e3779b1);
    SNAPSHOT_STATS.reset();
    const scenarios: Record<string, number> = {};
    while (SNAPSHOT_STATS.calls < 1000) {
      ls.reset();
      for (let i = 0; i < 12; i++) {
        const snap = next() % 3 === 0;
        const draws = Array.from({ length: 10 }, () => next() >>> 0);
        if (snap) scenarios[scenarioOf(draws[0])] = (scenarios[scenarioOf(draws[0])] ?? 0) + 1;
        const f = ls.step(resolve(ls, { snap, draws }), i);
        expect(f).toBeNull();
      }
    }
    const { calls, exactlyFull, cyclic, oneShort, oneLong, overflow, copied } = SNAPSHOT_STATS;
    console.log(`snapshot generator over ${calls} calls: ${copied} copied, array too short ${overflow}, exactly full ${exactlyFull}, one short ${oneShort}, one long ${oneLong}, cyclic ${cyclic}`);
    expect(overflow / calls).toBeGreaterThanOrEqual(0.03);
    expect(cyclic / calls).toBeGreaterThanOrEqual(0.03);
  });

  // The array's 512-entries-per-page boundary needs a host stage-2 with ~512 table pages: a 1 GiB
  // machine, one page donated in each of enough 2 MiB regions, and a one-page array.
  describe('the used-pages array at its page boundary (1 GiB machine)', () => {
    const big = { memory: [[0x40000, 0x40000]] as const, pageSize: 4096 };
    const [DESC, PGD, USED] = [0x40001, 0x40002, 0x40010];
    const mcPages = Array.from({ length: 1200 }, (_, i) => 0x40020 + i).filter((p) => p % 512 !== 0).slice(0, 520);
    const callPages = [DESC, PGD, PGD + 1, USED, ...mcPages];

    /** Boots, then donates one page per fresh 2 MiB region until the copy needs exactly `need` tables. */
    function shape(ls: Lockstep, need: number): number {
      ls.reset();
      const base = tablePagesAfter(ls.hyp, callPages);
      let n = 0;
      for (let region = 2; n < need - base; region++, n++)
        expect(ls.step({ call: '__pkvm_host_donate_hyp', args: { pfn: 0x40000 + region * 512, nr_pages: 1 } }, n)).toBeNull();
      expect(tablePagesAfter(ls.hyp, callPages)).toBe(need);
      return n;
    }
    const call = (nr: number): TraceStep => ({
      call: '__pkvm_host_stage2_snapshot',
      args: { desc: DESC * 4096, pgd: PGD * 4096, pgd_pages: 2, mc: mcPages.map((p) => p * 4096), mc_nr_pages: nr, mc_tail: 0, used: USED * 4096, num_used_pages: 1, used_pages_indx: 0 },
    });

    test.each([511, 512, 513])('a copy needing %i tables: recorded up to the array end, the rest still returned', (need) => {
      const ls = new Lockstep(big, [], handlers);
      const n = shape(ls, need);
      SNAPSHOT_STATS.reset();
      expect(ls.step(call(mcPages.length), n)).toBeNull();
      expect(ls.results[n]).toBe(PGD * 4096);
      expect(SNAPSHOT_STATS.exactlyFull + SNAPSHOT_STATS.oneShort + SNAPSHOT_STATS.oneLong).toBe(1);
      expect(ls.finish()).toBeNull();
    });

    test('the posted > check writes entry 512 into the page after the array, which the host owns', () => {
      const bug = SNAPSHOT_BUGS.find((b) => b.id === 'snapshot-used-pages-off-by-one')!;
      const ls = new Lockstep(big, [bug], handlers);
      const n512 = shape(ls, 512);
      expect(ls.step(call(mcPages.length), n512)).toBeNull(); // exactly full: nothing past the end
      const n = shape(ls, 513);
      const f = ls.step(call(mcPages.length), n);
      expect(f?.property).toBe(P.hypWritesOnlyOwnPages);
      expect(f?.message).toContain(`pfn 0x${(USED + 1).toString(16)}`);
    });
  });

  describe.each(SNAPSHOT_BUGS.map((b): [string, HypBug] => [b.id, b]))('bug %s', (_id, bug) => {
    test('is caught by the snapshot properties', () => {
      const buggy = new Lockstep(config, [bug], handlers);
      const out = fc.check(fc.property(seqArb, (seq) => runSeq(buggy, seq) === null), { seed: 0xb06, numRuns: 300 });
      expect(out.failed).toBe(true);
      const shrunk = out.counterexample?.[0] ?? [];
      const f = runSeq(buggy, shrunk);
      expect(f).not.toBeNull();
      console.log(`${bug.id}: caught after ${out.numRuns} run(s), shrunk to ${shrunk.length} step(s): ${f?.property} at step ${f?.step}: ${f?.message}`);
    });
  });
});
