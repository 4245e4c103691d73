// kvm_pgtable (hyp/pgtable.ts) against a reference map of leaves. The lockstep suites only see the
// page tables through the abstraction, over the default machine's few hot pages; this property drives
// one table directly, over the whole 40-bit input space and at every leaf level, and checks walk,
// get_leaf, the tables' refcounts and that every table page the pool handed out is in use. Also the
// descriptor encoding of output addresses.
import { expect, test } from 'vitest';
import fc from 'fast-check';
import { KVM_LEVEL_4K, type KvmPte, kvm_granule_pages, kvm_init_invalid_leaf_owner, kvm_init_valid_leaf_pte, kvm_pfn_to_pte_hi, kvm_pfn_to_pte_lo, kvm_pte_to_pfn, type WalkEntry } from '../hyp/pgtable';
import { PAGE_WORDS } from '../hyp/memory';
import { PA_PFNS } from '../types/config';
import { STANDALONE, standaloneTable } from './hyp-fixtures';
import { SEED } from './seed';

const PGD = STANDALONE.pgd;
/** Leaf attributes: none (the table does not read them). */
const NO_ATTR: KvmPte = { lo: 0, hi: 0 };

// Addresses near the interesting boundaries: 0, block and table edges, the PGD's second page, the top.
const HOT = [0, 1, 511, 512, 513, 0x3ffff, 0x40000, 0x40001, 0x401ff, 0x40200, 0x7ffff, 0x80000, 0x8000000, 0x80401ff, PA_PFNS - 512, PA_PFNS - 1];
const addrArb = fc.oneof(fc.constantFrom(...HOT), fc.integer({ min: 0, max: PA_PFNS - 1 }));
const opArb = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('set' as const), addr: addrArb, level: fc.constantFrom(1, 2, 3, 3), annotate: fc.boolean(), out: fc.integer({ min: 0, max: PA_PFNS - 1 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('unmap' as const), addr: addrArb, level: fc.constant(3), annotate: fc.constant(false), out: fc.constant(0) }) },
);

interface Leaf {
  start: number;
  level: number;
  lo: number;
  hi: number;
}

test('set_entry, unmap_entry, walk and get_leaf agree with a map of leaves; tables are counted and conserved', () => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 25 }), fc.array(fc.tuple(addrArb, fc.integer({ min: 1, max: 2 ** 20 })), { maxLength: 4 }), (ops, ranges) => {
      const { mem, vmemmap, pool, pgt } = standaloneTable();
      const ref = new Map<string, Leaf>();
      const overlaps = (l: Leaf, start: number, size: number) => l.start < start + size && start < l.start + kvm_granule_pages(l.level);
      for (const o of ops) {
        if (o.op === 'set') {
          const size = kvm_granule_pages(o.level);
          const start = o.addr - (o.addr % size);
          const outStart = o.out - (o.out % size);
          const pte = o.annotate && o.level === KVM_LEVEL_4K ? kvm_init_invalid_leaf_owner(1) : kvm_init_valid_leaf_pte(outStart, NO_ATTR, o.level);
          pgt.set_entry(o.addr, o.level, pte);
          for (const [k, l] of ref) if (overlaps(l, start, size)) ref.delete(k);
          ref.set(`${o.level}:${start}`, { start, level: o.level, lo: pte.lo >>> 0, hi: pte.hi >>> 0 });
        } else {
          pgt.unmap_entry(o.addr);
          for (const [k, l] of ref) if (overlaps(l, o.addr, 1)) ref.delete(k);
        }
      }
      const sorted = (ls: Leaf[]) => ls.map((l) => `${l.level}:${l.start.toString(16)}:${l.lo}:${l.hi}`).sort();
      // The full walk: exactly the reference leaves; every table in pre/post pairs, each counted.
      const leaves: Leaf[] = [];
      const pre: WalkEntry[] = [];
      const stack: string[] = [];
      let nested = true;
      const key = (e: WalkEntry) => `${e.level}:${e.addr}`;
      pgt.walk(0, PA_PFNS, {
        leaf: (e) => {
          if (stack.length !== e.level - 1) nested = false; // a leaf at level L sits under L - 1 tables
          leaves.push({ start: e.addr, level: e.level, lo: e.lo, hi: e.hi });
        },
        tablePre: (e) => {
          pre.push(e);
          stack.push(key(e));
        },
        tablePost: (e) => {
          if (stack.pop() !== key(e)) nested = false;
        },
      });
      expect(sorted(leaves)).toEqual(sorted([...ref.values()]));
      expect(nested && stack.length === 0).toBe(true);
      const tables = pre.map((e) => kvm_pte_to_pfn(e.lo, e.hi));
      expect(new Set(tables)).toEqual(pool.inUse());
      expect(tables.length).toBe(pool.inUse().size);
      for (const t of [...tables, PGD, PGD + 1]) {
        let used = 0;
        for (let w = 0; w < PAGE_WORDS; w += 2) if (mem.read32(t, w) !== 0 || mem.read32(t, w + 1) !== 0) used++;
        expect(vmemmap.refcount(t), `table 0x${t.toString(16)}`).toBe(1 + used);
      }
      // A walk of a sub-range: the leaves that overlap it, and no others; a walk without a leaf
      // visitor sees the same tables as the full walk does in that range.
      for (const [from, n] of ranges) {
        const got: string[] = [];
        pgt.walk(from, n, { leaf: (e) => got.push(`${e.level}:${e.addr}`) });
        const want = [...ref.values()].filter((l) => overlaps(l, from, Math.min(n, PA_PFNS - from))).map((l) => `${l.level}:${l.start}`);
        expect(got.sort()).toEqual(want.sort());
        const tablesIn: string[] = [];
        pgt.walk(from, n, { tablePre: (e) => tablesIn.push(`${e.level}:${e.addr}`) });
        const tablesWithLeaves: string[] = [];
        pgt.walk(from, n, { tablePre: (e) => tablesWithLeaves.push(`${e.level}:${e.addr}`), leaf: () => {} });
        expect(tablesIn.sort()).toEqual(tablesWithLeaves.sort());
      }
      // get_leaf finds each leaf, at its level, from any page it covers.
      for (const l of ref.values()) {
        for (const a of [l.start, l.start + kvm_granule_pages(l.level) - 1]) {
          const leaf = pgt.get_leaf(a);
          expect([leaf.level, leaf.lo, leaf.hi]).toEqual([l.level, l.lo, l.hi]);
        }
      }
      // Unmapping everything frees every table page (but not the PGD).
      for (const l of ref.values()) pgt.unmap_entry(l.start);
      expect(pool.inUse().size).toBe(0);
      expect(vmemmap.refcount(PGD)).toBe(1);
      expect(vmemmap.refcount(PGD + 1)).toBe(1);
    }),
    { seed: SEED, numRuns: 150 },
  );
});

test('walks of empty or out-of-range spans visit nothing', () => {
  const { pgt } = standaloneTable();
  pgt.set_entry(5, KVM_LEVEL_4K, kvm_init_valid_leaf_pte(0, NO_ATTR, KVM_LEVEL_4K));
  pgt.set_entry(PA_PFNS - 1, KVM_LEVEL_4K, kvm_init_valid_leaf_pte(0, NO_ATTR, KVM_LEVEL_4K));
  const seen: number[] = [];
  const v = { leaf: (e: WalkEntry) => seen.push(e.addr) };
  pgt.walk(5, 0, v);
  pgt.walk(6, 10, v);
  pgt.walk(PA_PFNS, 10, v);
  pgt.walk(0, 5, v);
  expect(seen).toEqual([]);
  pgt.walk(PA_PFNS - 1, 100, v);
  pgt.walk(4, 2, v);
  expect(seen).toEqual([PA_PFNS - 1, 5]);
});

test('descriptors encode output addresses above 4 GiB (pfn >= 2^20)', () => {
  for (const pfn of [0, 0xfffff, 0x100000, 0x123456, PA_PFNS - 1]) expect(kvm_pte_to_pfn(kvm_pfn_to_pte_lo(pfn), kvm_pfn_to_pte_hi(pfn))).toBe(pfn);
  expect(kvm_pfn_to_pte_hi(0x123456)).toBe(1);
});
