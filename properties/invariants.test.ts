// The checker's own power: corrupt hyp's state behind its back (no catalogued bug does these) and the
// end-of-sequence check must name the broken invariant.
import { describe, expect, test } from 'vitest';
import { Lockstep } from '../checker/lockstep';
import { runSteps } from '../checker/sequence';
import { DEFAULT_CONFIG } from '../types/config';
import { kvm_pte_to_pfn } from '../hyp/pgtable';

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
    expect(withState((ls) => ls.hyp.vmemmap.page_ref_add(hostTable(ls), 1))).toBe('table-refcount');
  });

  test('a boot-time table page whose refcount is off (its entries come from the boot cache)', () => {
    expect(withState((ls) => ls.hyp.vmemmap.page_ref_add(ls.hyp.layout.hostPgd, -1))).toBe('table-refcount');
  });

  test('a pool page allocated and never used (a leak)', () => {
    expect(withState((ls) => ls.hyp.host_pool.alloc())).toBe('pages-conserved');
  });

  test('a host stage-2 entry cleared under a donated page (the host could fault it back in)', () => {
    expect(withState((ls) => ls.hyp.host_mmu.set_entry(B + 7, 3, 0, 0))).toBe('state-agrees');
  });

  test("hyp's carve-out annotation removed", () => {
    const f = withState((ls) => ls.hyp.host_mmu.set_entry(ls.hyp.layout.carveout[0] + 5, 3, 0, 0));
    expect(f).toBe('host-reaches-only-its-pages');
  });

  test('a fault logged twice', () => {
    expect(withState((ls) => { ls.hyp.faults.record(B + 7); ls.hyp.faults.record(B + 7); })).toBe('fault-log-agrees');
  });
});
