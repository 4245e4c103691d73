// The checker's own power: corrupt hyp's state behind its back (no catalogued bug does these) and the
// end-of-sequence check must name the broken invariant.
import { describe, expect, test } from 'vitest';
import { Lockstep } from '../checker/lockstep';
import { runSteps } from '../checker/sequence';
import { DEFAULT_CONFIG } from '../types/config';
import { KVM_LEVEL_4K, KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W, KVM_PTE_ZERO, kvm_pte_to_pfn } from '../hyp/pgtable';
import { P } from '../checker/properties';

const B = 0x40000;

function withState(corrupt: (ls: Lockstep) => void): string | null {
  const ls = new Lockstep(DEFAULT_CONFIG);
  runSteps(ls, [
    { call: 'host_access', args: { pfn: B + 5, write: true } },
    { call: '__pkvm_host_donate_hyp', args: { pfn: B + 7, nr_pages: 2 } },
  ]);
  corrupt(ls);
  return ls.finish()?.property ?? null;
}

/** A level-3 table page of the host stage-2 (one exists after the donation splits the block). */
function hostTable(ls: Lockstep): number {
  let table = -1;
  ls.hyp.host_mmu.walk(B, 512, { tablePre: (e) => (table = e.level === 2 ? kvm_pte_to_pfn(e.lo, e.hi) : table) });
  return table;
}

describe('the end-of-sequence check catches state corrupted behind its back', () => {
  test('an untouched run is clean', () => {
    expect(withState(() => undefined)).toBeNull();
  });

  test('a table page whose refcount is off', () => {
    expect(withState((ls) => ls.hyp.vmemmap.page_ref_add(hostTable(ls), 1))).toBe(P.tableRefcount);
  });

  test('a boot-time table page whose refcount is off', () => {
    expect(withState((ls) => ls.hyp.vmemmap.page_ref_add(ls.hyp.layout.hostPgd, -1))).toBe(P.tableRefcount);
  });

  test('a pool page allocated and never used (a leak)', () => {
    expect(withState((ls) => ls.hyp.host_pool.alloc())).toBe(P.pagesConserved);
  });

  test('a host stage-2 entry cleared under a donated page (the host could fault it back in)', () => {
    expect(withState((ls) => ls.hyp.host_mmu.set_entry(B + 7, KVM_LEVEL_4K, KVM_PTE_ZERO))).toBe(P.stateAgrees);
  });

  test("hyp's carve-out annotation removed", () => {
    const f = withState((ls) => ls.hyp.host_mmu.set_entry(ls.hyp.layout.carveout[0] + 5, KVM_LEVEL_4K, KVM_PTE_ZERO));
    expect(f).toBe(P.hostReachesOnlyItsPages);
  });

  test('a fault logged twice', () => {
    expect(withState((ls) => { ls.hyp.faults.record(B + 7); ls.hyp.faults.record(B + 7); })).toBe(P.faultLogAgrees);
  });

  test('one table page linked from two entries (block 1 reuses block 0\'s level-3 table)', () => {
    const f = withState((ls) => {
      const table = hostTable(ls);
      const level2 = (() => {
        let t = -1;
        ls.hyp.host_mmu.walk(B, 512, { tablePre: (e) => (t = e.level === 1 ? kvm_pte_to_pfn(e.lo, e.hi) : t) });
        return t;
      })();
      expect(kvm_pte_to_pfn(ls.hyp.mem.read32(level2, 0), ls.hyp.mem.read32(level2, 1))).toBe(table);
      ls.hyp.mem.write32('hyp', level2, 2, ls.hyp.mem.read32(level2, 0));
      ls.hyp.mem.write32('hyp', level2, 3, ls.hyp.mem.read32(level2, 1));
    });
    expect(f).toBe(P.tablePagesHypOwned);
  });

  test("a guest leaf's permissions changed behind the model's back", () => {
    const ls = new Lockstep(DEFAULT_CONFIG);
    const run = runSteps(ls, [
      { call: '__pkvm_init_vm', args: { pfn: B + 20, nr_pages: 3 } },
      { call: '__pkvm_host_share_guest', args: { pfn: B + 30, gfn: 5, nr_pages: 1, vm: { ref: 1 }, prot: { r: true, w: true, x: false } } },
    ]);
    expect(run.failure).toBeNull();
    const pgt = ls.hyp.vm(ls.results[0])!.pgt;
    const leaf = pgt.get_leaf(5);
    expect(leaf.level).toBe(KVM_LEVEL_4K);
    pgt.set_entry(5, KVM_LEVEL_4K, { lo: leaf.lo & ~KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W, hi: leaf.hi });
    expect(ls.finish()).toMatchObject({ property: P.stateAgrees, message: expect.stringContaining('gfn 0x5') });
  });

  test("a table page inside hyp's carve-out, which the check does not re-read, whose refcount is off", () => {
    const f = withState((ls) => {
      const [first] = ls.hyp.layout.carveout;
      let table = -1;
      ls.hyp.hyp_pgt.walk(first, 1, { tablePre: (e) => (table = e.level === 2 ? kvm_pte_to_pfn(e.lo, e.hi) : table) });
      ls.hyp.vmemmap.page_ref_add(table, 1);
    });
    expect(f).toBe(P.tableRefcount);
  });

  test("a carve-out annotation overwritten in memory in a later sequence (after clean ones)", () => {
    const ls = new Lockstep(DEFAULT_CONFIG);
    for (let i = 0; i < 3; i++) expect(runSteps(ls, [{ call: 'host_access', args: { pfn: B + i, write: true } }]).failure).toBeNull();
    runSteps(ls, [{ call: 'host_access', args: { pfn: B + 9, write: false } }]);
    const [first] = ls.hyp.layout.carveout;
    let table = -1;
    ls.hyp.host_mmu.walk(first, 1, { tablePre: (e) => (table = e.level === 2 ? kvm_pte_to_pfn(e.lo, e.hi) : table) });
    ls.hyp.mem.write32('hyp', table, 2 * (first & 511), 0);
    expect(ls.finish()?.property).toBe(P.hostReachesOnlyItsPages);
  });
});
