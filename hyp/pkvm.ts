// pkvm.c: protected VMs. __pkvm_init_vm takes donated pages for the VM's metadata, its stage-2 PGD
// and a pool for its stage-2 tables; guests borrow host pages through their own stage-2 (gfn -> pfn)
// with the same software state bits. VM slots live in journaled cells.
import { E2BIG, EINVAL, ENOENT, ENOMEM, EPERM } from '../types/errno';
import { GUEST_IPA_PFNS, GUEST_PGD_PAGES, MAX_VMS, PTRS_PER_TABLE, VM_HANDLE_OFFSET, VM_MIN_PAGES } from '../types/config';
import type { Prot } from '../types/calls';
import { Hyp, PKVM_ID_HOST, PKVM_ID_HYP, PKVM_NOPAGE, PKVM_PAGE_OWNED, PKVM_PAGE_SHARED_BORROWED, PKVM_PAGE_SHARED_OWNED, pkvm_mkstate } from './mem_protect';
import {
  KVM_LEVEL_1G,
  KVM_LEVEL_2M,
  KVM_LEVEL_4K,
  KVM_PTE_LEAF_ATTR_HI_XN,
  KVM_PTE_LEAF_ATTR_LO_AF,
  KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_NORMAL,
  KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R,
  KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W,
  KVM_PTE_LEAF_ATTR_LO_SH_IS,
  KvmPgtable,
  type KvmPte,
  kvm_granule_pages,
  kvm_init_valid_leaf_pte,
  kvm_pte_to_pfn,
  kvm_pte_valid,
} from './pgtable';
import { HypPool } from './pool';
import { HYP_PAGE_INTERNAL } from './vmemmap';

const IN_USE = 0;
const FIRST = 1;
const NR = 2;
const SLOT_CELLS = 3;

/** stage2_set_prot_attr for a guest's normal memory: the access bits `prot` asks for, inner shareable. */
const guest_prot_attr = (prot: Prot): KvmPte => ({
  lo: KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_NORMAL | KVM_PTE_LEAF_ATTR_LO_SH_IS | KVM_PTE_LEAF_ATTR_LO_AF | (prot.r ? KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R : 0) | (prot.w ? KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W : 0),
  hi: prot.x ? 0 : KVM_PTE_LEAF_ATTR_HI_XN,
});

export interface PkvmVmView {
  readonly handle: number;
  readonly first: number;
  readonly nr: number;
  readonly pgt: KvmPgtable;
}

export class Pkvm extends Hyp {
  private readonly vmCells = this.mem.allocCells(MAX_VMS * SLOT_CELLS);
  /** Each VM's own pool of stage-2 table pages (from its donation). */
  readonly vmPools = Array.from({ length: MAX_VMS }, (_, i) => new HypPool(this.mem, `vm ${i}`));

  private slotOf(handle: number): number {
    const slot = handle - VM_HANDLE_OFFSET;
    return Number.isInteger(slot) && slot >= 0 && slot < MAX_VMS && this.mem.cell(this.vmCells + slot * SLOT_CELLS + IN_USE) ? slot : -1;
  }

  /** One KvmPgtable object per slot, rebuilt only when the slot's PGD moves. */
  private readonly pgtCache: (KvmPgtable | undefined)[] = [];

  /** The guest stage-2 of a VM slot: tables from the VM's pool, then from hyp's guest reserve. */
  private guestPgt(slot: number): KvmPgtable {
    const first = this.mem.cell(this.vmCells + slot * SLOT_CELLS + FIRST);
    const cached = this.pgtCache[slot];
    if (cached && cached.pgd === first + 1) return cached;
    const pool = this.vmPools[slot];
    const ops = {
      zalloc_page: () => {
        const p = pool.tryAlloc();
        return p >= 0 ? p : this.guest_reserve.alloc();
      },
      put_page: (p: number) => (pool.contains(p) ? pool.free(p) : this.guest_reserve.free(p)),
    };
    const pgt = new KvmPgtable({ mem: this.mem, vmemmap: this.vmemmap, mm_ops: ops, start_level: KVM_LEVEL_1G, pgd: first + 1, pgd_pages: GUEST_PGD_PAGES, ia_pages: GUEST_IPA_PFNS });
    this.pgtCache[slot] = pgt;
    return pgt;
  }

  /** A live VM by handle, for the checker's abstraction (null when there is none). */
  vm(handle: number): PkvmVmView | null {
    const slot = this.slotOf(handle);
    if (slot < 0) return null;
    const base = this.vmCells + slot * SLOT_CELLS;
    return { handle, first: this.mem.cell(base + FIRST), nr: this.mem.cell(base + NR), pgt: this.guestPgt(slot) };
  }

  /** The handle of the live VM whose donated pages include `pfn`, or -1. */
  vm_of_page(pfn: number): number {
    for (let slot = 0; slot < MAX_VMS; slot++) {
      const base = this.vmCells + slot * SLOT_CELLS;
      if (!this.mem.cell(base + IN_USE)) continue;
      const first = this.mem.cell(base + FIRST);
      if (pfn >= first && pfn < first + this.mem.cell(base + NR)) return VM_HANDLE_OFFSET + slot;
    }
    return -1;
  }

  /** Live VMs, for the checker's abstraction. */
  vms(): PkvmVmView[] {
    const out: PkvmVmView[] = [];
    for (let slot = 0; slot < MAX_VMS; slot++) {
      const vm = this.vm(VM_HANDLE_OFFSET + slot);
      if (vm) out.push(vm);
    }
    return out;
  }

  /** The guest's state of a gfn (PKVM_NOPAGE when unmapped). */
  guest_get_page_state(pgt: KvmPgtable, gfn: number): number {
    return kvm_pte_valid(pgt.get_leaf(gfn).lo) ? PKVM_PAGE_SHARED_BORROWED : PKVM_NOPAGE;
  }

  /** __guest_check_transition_size: one page, or a 2 MiB-aligned block. */
  guest_check_transition_size(gfn: number, nr: number, pfn = 0): number {
    const aligned = (x: number) => x % PTRS_PER_TABLE === 0;
    const ok = nr === 1 || (nr === PTRS_PER_TABLE && aligned(gfn) && aligned(pfn));
    return ok && gfn + nr <= GUEST_IPA_PFNS ? 0 : -EINVAL;
  }

  /** The host may share a page it owns, or one it already shares with guests only. */
  host_check_guest_shareable(pfn: number, nr: number): number {
    for (let i = 0; i < nr; i++) {
      const st = this.host_page_state(pfn + i);
      if (st === PKVM_PAGE_OWNED) continue;
      if (st === PKVM_PAGE_SHARED_OWNED && this.vmemmap.share_guest_count(pfn + i) > 0) continue;
      return -EPERM;
    }
    return 0;
  }

  __pkvm_host_share_guest(pfn: number, gfn: number, nr: number, handle: number, prot: Prot): number {
    const slot = this.slotOf(handle);
    if (slot < 0) return -EINVAL;
    const size = this.guest_check_transition_size(gfn, nr, pfn);
    if (size) return size;
    const pgt = this.guestPgt(slot);
    pfn = this.phys_range(pfn, nr).addr; // hyp_pfn_to_phys(pfn), in u64
    // 6.16 order: the host range, the guest range (NOPAGE), then each host page.
    let r = this.check_range_allowed_memory(pfn, nr);
    for (let i = 0; r === 0 && i < nr; i++) if (this.guest_get_page_state(pgt, gfn + i) !== PKVM_NOPAGE) r = -EPERM;
    if (r === 0) r = this.host_check_guest_shareable(pfn, nr);
    if (r !== 0) return r;
    for (let i = 0; i < nr; i++) {
      if (this.vmemmap.share_guest_count(pfn + i) === 0) this.__host_set_page_state_range(pfn + i, 1, PKVM_PAGE_SHARED_OWNED);
      this.vmemmap.share_guest_count_add(pfn + i, 1);
    }
    const level = nr === 1 ? KVM_LEVEL_4K : KVM_LEVEL_2M;
    pgt.set_entry(gfn, level, kvm_init_valid_leaf_pte(pfn, pkvm_mkstate(guest_prot_attr(prot), PKVM_PAGE_SHARED_BORROWED), level));
    return 0;
  }

  __pkvm_host_unshare_guest(gfn: number, nr: number, handle: number): number {
    const slot = this.slotOf(handle);
    if (slot < 0) return -EINVAL;
    const size = this.guest_check_transition_size(gfn, nr);
    if (size) return size;
    const pgt = this.guestPgt(slot);
    const leaf = pgt.get_leaf(gfn);
    if (!kvm_pte_valid(leaf.lo)) return -ENOENT;
    if (kvm_granule_pages(leaf.level) !== nr) return -E2BIG;
    const pfn = kvm_pte_to_pfn(leaf.lo, leaf.hi);
    const r = this.__host_check_page_state_range(pfn, nr, PKVM_PAGE_SHARED_OWNED);
    if (r) return r;
    this.guest_unmap(pgt, gfn, pfn, nr);
    return 0;
  }

  /** Removes a guest mapping and drops the host's share count, back to OWNED at zero. */
  guest_unmap(pgt: KvmPgtable, gfn: number, pfn: number, nr: number): void {
    pgt.unmap_entry(gfn);
    for (let i = 0; i < nr; i++) {
      this.vmemmap.share_guest_count_add(pfn + i, -1);
      if (this.vmemmap.share_guest_count(pfn + i) === 0) this.__host_set_page_state_range(pfn + i, 1, PKVM_PAGE_OWNED);
    }
  }

  /** The lowest VM slot not in use, or -1 when all MAX_VMS are. */
  find_free_vm_slot(): number {
    for (let slot = 0; slot < MAX_VMS; slot++) if (!this.mem.cell(this.vmCells + slot * SLOT_CELLS + IN_USE)) return slot;
    return -1;
  }

  __pkvm_init_vm(pfn: number, nr: number): number {
    ({ addr: pfn, size: nr } = this.phys_range(pfn, nr));
    if (nr < VM_MIN_PAGES) return -EINVAL;
    const r = this.__host_check_page_state_range(pfn, nr, PKVM_PAGE_OWNED) || this.__hyp_check_page_state_range(pfn, nr, PKVM_NOPAGE);
    if (r !== 0) return r;
    if (this.effect_range(pfn, nr)[1] === pfn) return 0; // a wrapping range in 6.12 visits nothing: no VM
    const slot = this.find_free_vm_slot();
    if (slot < 0) return -ENOMEM;
    for (let p = pfn; p < pfn + nr; p++) {
      this.host_stage2_set_owner_locked(p, 1, PKVM_ID_HYP);
      this.hyp_map(p, PKVM_PAGE_OWNED);
      this.vmemmap.set_flags(p, HYP_PAGE_INTERNAL, 0);
    }
    const base = this.vmCells + slot * SLOT_CELLS;
    this.mem.setCell(base + IN_USE, 1);
    this.mem.setCell(base + FIRST, pfn);
    this.mem.setCell(base + NR, nr);
    // The metadata page: hyp records the VM's handle and size in it.
    this.mem.zero_page('hyp', pfn);
    this.mem.write32('hyp', pfn, 0, VM_HANDLE_OFFSET + slot);
    this.mem.write32('hyp', pfn, 1, nr);
    this.guestPgt(slot).init();
    this.vmPools[slot].reset(pfn + VM_MIN_PAGES, nr - VM_MIN_PAGES);
    this.faults.clear();
    return VM_HANDLE_OFFSET + slot;
  }

  __pkvm_teardown_vm(handle: number): number {
    const slot = this.slotOf(handle);
    if (slot < 0) return -ENOENT;
    const pgt = this.guestPgt(slot);
    const leaves: [number, number, number][] = [];
    pgt.walk(0, GUEST_IPA_PFNS, { leaf: (e) => leaves.push([e.addr, kvm_pte_to_pfn(e.lo, e.hi), kvm_granule_pages(e.level)]) });
    for (const [gfn, pfn, nr] of leaves) this.guest_unmap(pgt, gfn, pfn, nr);
    const base = this.vmCells + slot * SLOT_CELLS;
    const first = this.mem.cell(base + FIRST);
    const nr = this.mem.cell(base + NR);
    for (let p = first; p < first + nr; p++) {
      this.mem.zero_page('hyp', p); // scrub before the host gets it back
      this.vmemmap.page_ref_add(p, -this.vmemmap.refcount(p));
      this.vmemmap.set_flags(p, 0, HYP_PAGE_INTERNAL);
      this.hyp_unmap(p);
      this.host_stage2_set_owner_locked(p, 1, PKVM_ID_HOST);
    }
    this.vmPools[slot].reset(0, 0);
    this.mem.setCell(base + IN_USE, 0);
    return 0;
  }
}
