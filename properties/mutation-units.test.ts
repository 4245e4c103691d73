// Directed tests of hyp/'s building blocks, added to kill mutants that the lockstep suites let
// survive (docs/mutation.md): the journal of simulated memory, the page pool, hyp_vmemmap and the
// fault log are only ever seen through the model comparison, which cannot notice e.g. a journal that
// records too much, or a pool that hands out a page twice when the test never runs it dry.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { PAGE_WORDS, PhysMem } from '../hyp/memory';
import { HypPool, PoolExhausted } from '../hyp/pool';
import { HYP_PAGE_FFA_SHARED, HYP_PAGE_INTERNAL, HypVmemmap } from '../hyp/vmemmap';
import { HostFaultLog } from '../hyp/fault-log';
import { DEFAULT_CONFIG, FAULT_LOG_SIZE } from '../types/config';
import { SEED } from './seed';

describe('PhysMem: pages, cells and the undo journal', () => {
  test('cells are handed out consecutively and keep their values when the store grows', () => {
    const m = new PhysMem();
    expect(m.allocCells(3)).toBe(0);
    expect(m.allocCells(1000)).toBe(3);
    m.setCell(2, 7);
    m.setCell(1002, -5);
    expect(m.allocCells(21)).toBe(1003); // exactly fills 1024
    m.setCell(1023, 9);
    expect(m.allocCells(5000)).toBe(1024); // grows to max(6024, 2048)
    expect(m.cell(2)).toBe(7);
    expect(m.cell(1002)).toBe(-5);
    expect(m.cell(1023)).toBe(9);
    m.setCell(6023, 4);
    expect(m.cell(6023)).toBe(4);
    expect(m.cell(6022)).toBe(0);
    expect(m.allocCells(1)).toBe(6024);
    m.setCell(6024, 11); // grows by doubling
    expect(m.cell(6024)).toBe(11);
    expect(m.cell(6023)).toBe(4);
  });

  test('untouched pages read as zero; pageView of one is the shared zero page', () => {
    const m = new PhysMem();
    expect(m.read32(0x40000, 5)).toBe(0);
    expect(m.pageView(0x40000).length).toBe(PAGE_WORDS);
    expect(m.pageView(0x40000)).toBe(m.pageView(0x40001));
    expect(m.pageView(0x40000).every((w) => w === 0)).toBe(true);
    m.write32('host', 0x40000, 5, 0xdeadbeef);
    expect(m.read32(0x40000, 5)).toBe(0xdeadbeef);
    expect(m.read32(0x40000, 4)).toBe(0);
    expect(m.pageView(0x40000)[5]).toBe(0xdeadbeef);
    expect(m.pageView(0x40001)[5]).toBe(0);
  });

  test('only hyp writes are reported, with their pfn', () => {
    const m = new PhysMem();
    const seen: number[] = [];
    m.write32('hyp', 1, 0, 1); // no listener yet
    m.onHypWrite = (pfn) => seen.push(pfn);
    m.write32('host', 2, 0, 1);
    m.write32('hyp', 3, 0, 1);
    m.write64('hyp', 4, 8, 5n);
    m.write64('host', 5, 8, 5n);
    expect(seen).toEqual([3, 4, 4]);
  });

  test('zero_page writes (and journals) only the words that are not zero, and never creates a page', () => {
    const m = new PhysMem();
    const seen: number[] = [];
    m.onHypWrite = (pfn) => seen.push(pfn);
    m.zero_page('hyp', 7);
    expect(m.mark()).toBe(0);
    expect(seen).toEqual([]);
    m.write32('host', 7, 0, 1);
    m.write32('host', 7, PAGE_WORDS - 1, 2);
    const mark = m.mark();
    expect(mark).toBe(4);
    m.zero_page('hyp', 7);
    expect(m.mark() - mark).toBe(4);
    expect(seen).toEqual([7, 7]);
    expect(m.read32(7, 0)).toBe(0);
    expect(m.read32(7, PAGE_WORDS - 1)).toBe(0);
    m.undo(mark);
    expect(m.read32(7, 0)).toBe(1);
    expect(m.read32(7, PAGE_WORDS - 1)).toBe(2);
  });

  test('a word index outside its page is an error, for reads and writes (never a silent alias of the next page)', () => {
    const m = new PhysMem();
    m.write32('host', 3, PAGE_WORDS - 1, 5);
    expect(m.read32(3, PAGE_WORDS - 1)).toBe(5);
    expect(m.read32(3, 0)).toBe(0);
    for (const word of [PAGE_WORDS, -1, 1.5, NaN]) {
      expect(() => m.read32(3, word), `read ${word}`).toThrow(RangeError);
      expect(() => m.write32('hyp', 3, word, 1), `write ${word}`).toThrow(RangeError);
    }
    expect(() => m.read32(3, PAGE_WORDS)).toThrow(`word ${PAGE_WORDS} is outside a page (0..${PAGE_WORDS - 1})`);
    expect(m.mark()).toBe(2);
  });

  test('zero_page clears a lone non-zero word wherever it sits in the page', () => {
    for (const word of [0, 1, 2, 3, 4, 5, 6, 7, 514, PAGE_WORDS - 2]) {
      const m = new PhysMem();
      m.write32('host', 9, word, 0xdead);
      m.zero_page('hyp', 9);
      expect([...m.pageView(9)].every((w) => w === 0), `word ${word}`).toBe(true);
    }
  });

  test('64-bit words are little-endian pairs of 32-bit words', () => {
    const m = new PhysMem();
    m.write64('host', 3, 16, 0x89abcdef_01234567n);
    expect(m.read32(3, 4)).toBe(0x01234567);
    expect(m.read32(3, 5)).toBe(0x89abcdef);
    expect(m.read64(3, 16)).toBe(0x89abcdef_01234567n);
    expect(m.read64(3, 8)).toBe(0n);
    m.write64('host', 3, 8, 0xffffffff_ffffffffn);
    expect(m.read64(3, 8)).toBe(0xffffffff_ffffffffn);
    expect(m.read64(3, 16)).toBe(0x89abcdef_01234567n);
  });

  test('describe names pages by pfn and byte, cells by index', () => {
    const m = new PhysMem();
    expect(m.describe(-13)).toBe('hyp data cell 12');
    expect(m.describe(-1)).toBe('hyp data cell 0');
    expect(m.describe(0x40003 * PAGE_WORDS + 4)).toBe('pfn 0x40003 byte 0x10');
    expect(m.describe(0)).toBe('pfn 0x0 byte 0x0');
  });

  test('commit forgets the journal: undo(0) then keeps the committed contents', () => {
    const m = new PhysMem();
    const c = m.allocCells(1);
    m.setCell(c, 3);
    m.write32('hyp', 9, 1, 4);
    m.commit();
    expect(m.mark()).toBe(0);
    m.setCell(c, 5);
    m.write32('hyp', 9, 1, 6);
    m.undo(0);
    expect(m.cell(c)).toBe(3);
    expect(m.read32(9, 1)).toBe(4);
    expect(m.mark()).toBe(0);
  });

  // A random program of writes to pages and cells, with marks: undo to a mark restores exactly the
  // contents at the mark, and diffSince(mark) names exactly the locations that differ from then.
  test('undo and diffSince agree with a copy taken at the mark (property)', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('page' as const), pfn: fc.integer({ min: 0, max: 3 }), word: fc.integer({ min: 0, max: 3 }), v: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ kind: fc.constant('cell' as const), pfn: fc.constant(0), word: fc.integer({ min: 0, max: 3 }), v: fc.integer({ min: -2, max: 3 }) }),
      fc.record({ kind: fc.constant('zero' as const), pfn: fc.integer({ min: 0, max: 3 }), word: fc.constant(0), v: fc.constant(0) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), fc.array(op, { maxLength: 3000 }), (before, after) => {
        const m = new PhysMem();
        const cells = m.allocCells(4);
        const apply = (o: (typeof before)[number]) =>
          o.kind === 'page' ? m.write32('hyp', o.pfn, o.word, o.v) : o.kind === 'cell' ? m.setCell(cells + o.word, o.v) : m.zero_page('hyp', o.pfn);
        before.forEach(apply);
        const snap = () => [...[0, 1, 2, 3].flatMap((p) => [0, 1, 2, 3].map((w) => m.read32(p, w))), ...[0, 1, 2, 3].map((i) => m.cell(cells + i))];
        const then = snap();
        const mark = m.mark();
        after.forEach(apply);
        const now = snap();
        const diff = m.diffSince(mark);
        const expected = then.map((v, i) => [i, v, now[i]] as const).filter(([, a, b]) => a !== b);
        const addrOf = (i: number) => (i < 16 ? Math.floor(i / 4) * PAGE_WORDS + (i % 4) : -(cells + (i - 16) + 1));
        expect(diff.map(([a, t, n]) => [a, t, n]).sort((x, y) => x[0] - y[0])).toEqual(expected.map(([i, a, b]) => [addrOf(i), a, b]).sort((x, y) => x[0] - y[0]));
        m.undo(mark);
        expect(snap()).toEqual(then);
        expect(m.mark()).toBe(mark);
        expect(m.diffSince(mark)).toEqual([]);
      }),
      { seed: SEED, numRuns: 60 },
    );
  });
});

describe('hyp_pool', () => {
  test('hands out its range in order, zeroed, then refuses; reuses freed pages last-in first-out', () => {
    const m = new PhysMem();
    m.write32('host', 101, 3, 0xaaaa); // a fresh page with the host's old data
    const pool = new HypPool(m, 'test pool', 100, 3);
    expect(pool.contains(99)).toBe(false);
    expect(pool.contains(100)).toBe(true);
    expect(pool.contains(102)).toBe(true);
    expect(pool.contains(103)).toBe(false);
    expect(pool.inUse()).toEqual(new Set());
    expect(pool.alloc()).toBe(100);
    expect(pool.alloc()).toBe(101);
    expect(m.read32(101, 3)).toBe(0);
    expect(pool.tryAlloc()).toBe(102);
    expect(pool.tryAlloc()).toBe(-1);
    expect(() => pool.alloc()).toThrow(PoolExhausted);
    expect(() => pool.alloc()).toThrow('hyp pool "test pool" is exhausted');
    expect(new PoolExhausted('x').name).toBe('PoolExhausted');
    expect(pool.inUse()).toEqual(new Set([100, 101, 102]));
    pool.free(101);
    pool.free(100);
    expect(pool.inUse()).toEqual(new Set([102]));
    expect(m.read32(100, 0)).toBe(102); // the free list, linked through the first word (pfn + 1)
    expect(pool.alloc()).toBe(100);
    expect(m.read32(100, 0)).toBe(0); // zeroed again when handed out
    expect(pool.inUse()).toEqual(new Set([100, 102]));
    expect(pool.alloc()).toBe(101);
    expect(pool.tryAlloc()).toBe(-1);
    pool.reset(200, 1);
    expect(pool.contains(100)).toBe(false);
    expect(pool.contains(200)).toBe(true);
    expect(pool.inUse()).toEqual(new Set());
    expect(pool.alloc()).toBe(200);
    expect(pool.tryAlloc()).toBe(-1);
  });

  test('an empty pool (the default) has nothing to give', () => {
    const m = new PhysMem();
    const pool = new HypPool(m, 'empty');
    expect(pool.tryAlloc()).toBe(-1);
    expect(pool.contains(0)).toBe(false);
    expect(pool.inUse().size).toBe(0);
  });
});

describe('hyp_vmemmap', () => {
  test('one slot per memory page across regions; MMIO has none', () => {
    const m = new PhysMem();
    const v = new HypVmemmap(m, { ...DEFAULT_CONFIG, memory: [[0x40000, 4], [0x50000, 4]] });
    const pages = [0x40000, 0x40003, 0x50000, 0x50003];
    pages.forEach((p, i) => v.page_ref_add(p, i + 1));
    pages.forEach((p, i) => expect(v.refcount(p)).toBe(i + 1));
    v.share_guest_count_add(0x50003, 2);
    expect(v.share_guest_count(0x50003)).toBe(2);
    expect(v.share_guest_count(0x50002)).toBe(0);
    expect(v.refcount(0x50003)).toBe(4);
    for (const mmio of [0x3ffff, 0x40004, 0x4ffff, 0x50004]) {
      expect(v.refcount(mmio)).toBe(0);
      expect(v.flags(mmio)).toBe(0);
      expect(() => v.page_ref_add(mmio, 1)).toThrow(`hyp_vmemmap: pfn 0x${mmio.toString(16)} is not memory`);
    }
    v.set_flags(0x40003, HYP_PAGE_INTERNAL | HYP_PAGE_FFA_SHARED, 0);
    expect(v.flags(0x40003)).toBe(HYP_PAGE_INTERNAL | HYP_PAGE_FFA_SHARED);
    v.set_flags(0x40003, 0, HYP_PAGE_FFA_SHARED);
    expect(v.flags(0x40003)).toBe(HYP_PAGE_INTERNAL);
    v.set_flags(0x40003, HYP_PAGE_INTERNAL, 0);
    expect(v.flags(0x40003)).toBe(HYP_PAGE_INTERNAL);
    expect(v.refcount(0x40003)).toBe(2);
    expect(v.flags(0x40002)).toBe(0);
  });
});

describe('host fault log', () => {
  test('logs each page once, warns once when full, counts every abort; clear empties it', () => {
    const m = new PhysMem();
    m.allocCells(5);
    const log = new HostFaultLog(m);
    expect(log.view()).toEqual({ entries: [], warned: false, dropped: 0, aborts: 0 });
    log.record(7);
    log.record(7);
    log.record(8);
    expect(log.view()).toEqual({ entries: [7, 8], warned: false, dropped: 0, aborts: 3 });
    for (let p = 100; p < 100 + FAULT_LOG_SIZE - 2; p++) log.record(p);
    expect(log.view().entries.length).toBe(FAULT_LOG_SIZE);
    expect(log.view().warned).toBe(false);
    log.record(100 + FAULT_LOG_SIZE - 3); // already logged: no warning
    expect(log.view().warned).toBe(false);
    log.record(5000);
    log.record(5000);
    expect(log.view()).toMatchObject({ warned: true, dropped: 2, aborts: FAULT_LOG_SIZE + 1 + 1 + 2 });
    expect(log.view().entries).not.toContain(5000);
    log.clear();
    expect(log.view()).toEqual({ entries: [], warned: false, dropped: 0, aborts: 0 });
    log.record(9);
    expect(log.view()).toEqual({ entries: [9], warned: false, dropped: 0, aborts: 1 });
  });

  test('owns exactly its own cells', () => {
    const m = new PhysMem();
    m.allocCells(5);
    const log = new HostFaultLog(m);
    const after = m.allocCells(1);
    const first = 5;
    const addr = (cell: number) => -(cell + 1);
    expect(after).toBe(first + 4 + FAULT_LOG_SIZE);
    expect(log.ownsCell(addr(first - 1))).toBe(false);
    expect(log.ownsCell(addr(first))).toBe(true);
    expect(log.ownsCell(addr(after - 1))).toBe(true);
    expect(log.ownsCell(addr(after))).toBe(false);
    expect(log.ownsCell(first)).toBe(false); // a page word, not a cell
    expect(log.ownsCell(0)).toBe(false);
  });
});
