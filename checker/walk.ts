// The checker's own read-only page-table walker: how the MMU would translate an address, computed
// from raw descriptors in simulated memory. It shares nothing with hyp's walker but the bit layout,
// so the invariants "really walk" the tables instead of asking hyp's bookkeeping.
import type { PhysMem } from '../hyp/memory';
import { KVM_PTE_VALID, kvm_invalid_pte_owner, kvm_pte_to_pfn } from '../hyp/pgtable';
import type { KvmPgtable } from '../hyp/pgtable';

export interface Translation {
  readonly level: number;
  readonly lo: number;
  readonly hi: number;
}

export function translate(mem: PhysMem, pgt: KvmPgtable, addr: number): Translation {
  let level = pgt.start_level;
  let entries = 512 * pgt.pgd_pages;
  let table = pgt.pgd;
  for (;;) {
    const span = 2 ** (9 * (3 - level));
    const i = Math.floor(addr / span) % entries;
    const words = mem.pageView(table + Math.floor(i / 512));
    const lo = words[2 * (i % 512)];
    const hi = words[2 * (i % 512) + 1];
    if (level === 3 || (lo & 3) !== 3) return { level, lo, hi };
    table = kvm_pte_to_pfn(lo, hi);
    entries = 512;
    level++;
  }
}

/** The page a valid leaf maps `addr` to (identity maps must give `addr` back). */
export function outputPfn(t: Translation, addr: number): number {
  const span = 2 ** (9 * (3 - t.level));
  return kvm_pte_to_pfn(t.lo, t.hi) + (addr % span);
}

export const isValid = (t: Translation): boolean => (t.lo & KVM_PTE_VALID) !== 0;
export const isZero = (t: Translation): boolean => t.lo === 0 && t.hi === 0;
export const annotationOwner = (t: Translation): number => kvm_invalid_pte_owner(t.lo);
