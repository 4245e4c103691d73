// Simulated physical memory (hyp/memory.ts): pages, journaled cells, the undo journal and its
// addresses. Only ever seen through the model comparison in the lockstep suites, which cannot notice
// e.g. a journal that records too much, or a write that runs off its page.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { addressCell, addressPfn, addressWord, cellAddress, isCellAddress, PAGE_WORDS, PhysMem, wordAddress } from '../hyp/memory';
import { PA_PFNS } from '../types/config';
import { SEED } from './seed';

describe('PhysMem: pages, cells and the undo journal', () => {
  test('cells are handed out consecutively, zeroed, and keep their values however many are added', () => {
    const m = new PhysMem();
    expect(m.allocCells(3)).toBe(0);
    expect(m.allocCells(1000)).toBe(3);
    m.setCell(2, 7);
    m.setCell(1002, -5);
    expect(m.allocCells(21)).toBe(1003);
    m.setCell(1023, 9);
    expect(m.allocCells(5000)).toBe(1024);
    expect([m.cell(2), m.cell(1002), m.cell(1023)]).toEqual([7, -5, 9]);
    m.setCell(6023, 4);
    expect([m.cell(6023), m.cell(6022)]).toEqual([4, 0]);
    expect(m.allocCells(1)).toBe(6024);
    m.setCell(6024, 11);
    expect([m.cell(6024), m.cell(6023), m.cell(2)]).toEqual([11, 4, 7]);
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

  test('zero_page writes only the words that are not zero, and never creates a page', () => {
    const m = new PhysMem();
    const seen: number[] = [];
    m.onHypWrite = (pfn) => seen.push(pfn);
    m.zero_page('hyp', 7);
    expect(m.mark()).toBe(0); // nothing journaled
    expect(seen).toEqual([]);
    m.write32('host', 7, 0, 1);
    m.write32('host', 7, PAGE_WORDS - 1, 2);
    const mark = m.mark();
    m.zero_page('hyp', 7);
    expect(m.diffSince(mark)).toEqual([[wordAddress(7, 0), 1, 0], [wordAddress(7, PAGE_WORDS - 1), 2, 0]]);
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
    expect(m.diffSince(0)).toEqual([[wordAddress(3, PAGE_WORDS - 1), 0, 5]]); // the refused writes left nothing
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

  test('journal addresses name a word of a page or a cell, and decode back', () => {
    for (const [pfn, word] of [[0, 0], [0x40003, 4], [PA_PFNS - 1, PAGE_WORDS - 1]]) {
      const a = wordAddress(pfn, word);
      expect([isCellAddress(a), addressPfn(a), addressWord(a)]).toEqual([false, pfn, word]);
    }
    for (const cell of [0, 12, 6023]) expect([isCellAddress(cellAddress(cell)), addressCell(cellAddress(cell))]).toEqual([true, cell]);
    const m = new PhysMem();
    expect(m.describe(cellAddress(12))).toBe('hyp data cell 12');
    expect(m.describe(wordAddress(0x40003, 4))).toBe('pfn 0x40003 byte 0x10');
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
        const addrOf = (i: number) => (i < 16 ? wordAddress(Math.floor(i / 4), i % 4) : cellAddress(cells + (i - 16)));
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
