// pkvm.c: protected VMs. __pkvm_init_vm takes donated pages for the VM's metadata, its stage-2 PGD
// and a pool for its stage-2 tables; guests borrow host pages through their own stage-2 (gfn -> pfn)
// with the same software state bits. VM slots live in journaled cells.
import { E2BIG, EINVAL, ENOENT, ENOMEM, EPERM, ERANGE } from '../types/errno';
import { GUEST_IPA_PFNS, GUEST_PGD_PAGES, MAX_VMS, PTRS_PER_TABLE, VM_HANDLE_OFFSET, VM_MIN_PAGES, VM_VCPUS } from '../types/config';
import { U64_PFNS } from '../types/kernel';
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
import { BUG_ON } from './bug';
import { HypPool } from './pool';
import { HYP_PAGE_INTERNAL } from './vmemmap';

const IN_USE = 0;
const FIRST = 1;
const NR = 2;
/** Then one cell per vCPU: set while the vCPU is loaded on a CPU (hyp_vcpu->loaded_hyp_vcpu). */
const VCPU_LOADED = 3;
const SLOT_CELLS = VCPU_LOADED + VM_VCPUS;

/** The IPA's guest frame: `gfn << PAGE_SHIFT` in u64. */
const ipa_pfn = (gfn: number): number => gfn % U64_PFNS;

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
  /**
   * The per-CPU loaded_hyp_vcpu of the one simulated CPU: 0, or 1 + slot * VM_VCPUS + vCPU index
   * (a cell, so that it is journaled and reset with the rest of hyp's memory).
   */
  private readonly loadedCell = this.mem.allocCells(1);
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

  /** __guest_check_transition_size: one page, or a 2 MiB block with the IPA (and the PA, if any) aligned. */
  guest_check_transition_size(gfn: number, nr: number, pfn = 0): number {
    const aligned = (x: number) => x % PTRS_PER_TABLE === 0;
    return nr === 1 || (nr === PTRS_PER_TABLE && aligned(gfn) && aligned(pfn)) ? 0 : -EINVAL;
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

  /** __guest_check_page_state_range(NOPAGE): the guest walk's -ERANGE past the IPA space, then -EPERM if anything is mapped. */
  guest_check_unmapped(pgt: KvmPgtable, gfn: number, nr: number): number {
    if (gfn + nr > pgt.ia_pages) return -ERANGE;
    for (let i = 0; i < nr; i++) if (this.guest_get_page_state(pgt, gfn + i) !== PKVM_NOPAGE) return -EPERM;
    return 0;
  }

  // ---- the loaded vCPU (pkvm.c) ----

  /**
   * pkvm_get_loaded_hyp_vcpu, as this CPU's cell holds it: 0 for none, else 1 + slot * VM_VCPUS +
   * index (the checker compares it after every call).
   */
  loaded_vcpu_code(): number {
    return this.mem.cell(this.loadedCell);
  }

  /** The slot of the loaded vCPU's VM, or -1. */
  loaded_vm_slot(): number {
    const v = this.loaded_vcpu_code();
    return v === 0 ? -1 : Math.floor((v - 1) / VM_VCPUS);
  }

  /** The loaded vCPU, for the checker's abstraction. */
  loaded_vcpu(): { vm: number; vcpu: number } | null {
    const v = this.loaded_vcpu_code();
    return v === 0 ? null : { vm: VM_HANDLE_OFFSET + this.loaded_vm_slot(), vcpu: (v - 1) % VM_VCPUS };
  }

  /**
   * pkvm_load_hyp_vcpu: nothing when this CPU has a vCPU loaded, the handle is unknown, the index is
   * not a vCPU of the VM, or the vCPU is loaded on another CPU; else the vCPU is loaded and the VM's
   * metadata page takes a reference (hyp_page_ref_inc(hyp_virt_to_page(hyp_vm))).
   */
  pkvm_load_hyp_vcpu(handle: number, idx: number): void {
    if (this.loaded_vcpu_code() !== 0) return;
    const slot = this.slotOf(handle);
    if (slot < 0 || idx >= VM_VCPUS) return;
    const base = this.vmCells + slot * SLOT_CELLS;
    if (this.mem.cell(base + VCPU_LOADED + idx)) return;
    this.mem.setCell(base + VCPU_LOADED + idx, 1);
    this.vmemmap.page_ref_add(this.mem.cell(base + FIRST), 1);
    this.mem.setCell(this.loadedCell, 1 + slot * VM_VCPUS + idx);
  }

  /** pkvm_put_hyp_vcpu: the vCPU leaves this CPU and drops its reference on the VM. */
  pkvm_put_hyp_vcpu(): void {
    const v = this.loaded_vcpu_code();
    if (v === 0) return;
    const base = this.vmCells + this.loaded_vm_slot() * SLOT_CELLS;
    this.mem.setCell(base + VCPU_LOADED + ((v - 1) % VM_VCPUS), 0);
    this.vmemmap.page_ref_add(this.mem.cell(base + FIRST), -1);
    this.mem.setCell(this.loadedCell, 0);
  }

  // ---- guest memory (mem_protect.c) ----

  /** __pkvm_host_share_guest, on the loaded vCPU's VM. */
  __pkvm_host_share_guest(pfn: number, gfn: number, nr: number, prot: Prot): number {
    const slot = this.loaded_vm_slot();
    if (slot < 0) return -EINVAL;
    gfn = ipa_pfn(gfn);
    const size = this.guest_check_transition_size(gfn, nr, pfn);
    if (size) return size;
    const pgt = this.guestPgt(slot);
    pfn = this.phys_range(pfn, nr).addr; // hyp_pfn_to_phys(pfn), in u64
    // 6.16 order: the host range, the guest range (NOPAGE), then each host page.
    const r = this.check_range_allowed_memory(pfn, nr) || this.guest_check_unmapped(pgt, gfn, nr) || this.host_check_guest_shareable(pfn, nr);
    if (r !== 0) return r;
    for (let i = 0; i < nr; i++) {
      if (this.vmemmap.share_guest_count(pfn + i) === 0) this.__host_set_page_state_range(pfn + i, 1, PKVM_PAGE_SHARED_OWNED);
      this.vmemmap.share_guest_count_add(pfn + i, 1);
    }
    const level = nr === 1 ? KVM_LEVEL_4K : KVM_LEVEL_2M;
    pgt.set_entry(gfn, level, kvm_init_valid_leaf_pte(pfn, pkvm_mkstate(guest_prot_attr(prot), PKVM_PAGE_SHARED_BORROWED), level));
    return 0;
  }

  /**
   * __check_host_shared_guest: the leaf for `gfn` is valid, exactly `nr` pages, borrowed, and its
   * pages are shared by the host (a count of 0 is a WARN). Returns the leaf's first pfn, or an errno.
   */
  check_host_shared_guest(pgt: KvmPgtable, gfn: number, nr: number): number {
    if (gfn >= pgt.ia_pages) return -ERANGE;
    const leaf = pgt.get_leaf(gfn);
    if (!kvm_pte_valid(leaf.lo)) return -ENOENT;
    if (kvm_granule_pages(leaf.level) !== nr) return -E2BIG;
    if (this.guest_get_page_state(pgt, gfn) !== PKVM_PAGE_SHARED_BORROWED) return -EPERM;
    const pfn = kvm_pte_to_pfn(leaf.lo, leaf.hi);
    for (let i = 0; i < nr; i++) {
      if (this.host_page_state(pfn + i) !== PKVM_PAGE_SHARED_OWNED) return -EPERM;
      BUG_ON(this.vmemmap.share_guest_count(pfn + i) === 0, `pfn 0x${(pfn + i).toString(16)} guest-mapped with no share count`);
    }
    return pfn;
  }

  /** assert_host_shared_guest (CONFIG_NVHE_EL2_DEBUG): a failure other than -ENOENT is a WARN. */
  assert_host_shared_guest(pgt: KvmPgtable, gfn: number, nr: number): void {
    const r = this.check_host_shared_guest(pgt, gfn, nr);
    BUG_ON(r < 0 && r !== -ENOENT, `gfn 0x${gfn.toString(16)}: not a host share of ${nr} pages (${r})`);
  }

  __pkvm_host_unshare_guest(gfn: number, nr: number, handle: number): number {
    const slot = this.slotOf(handle);
    if (slot < 0) return -EINVAL;
    gfn = ipa_pfn(gfn);
    const size = this.guest_check_transition_size(gfn, nr);
    if (size) return size;
    const pgt = this.guestPgt(slot);
    const pfn = this.check_host_shared_guest(pgt, gfn, nr);
    if (pfn < 0) return pfn;
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

  /** kvm_pgtable_stage2_relax_perms on the loaded vCPU's VM: sets S2AP R/W and clears XN as asked. */
  __pkvm_host_relax_perms_guest(gfn: number, prot: Prot): number {
    const slot = this.loaded_vm_slot();
    if (slot < 0) return -EINVAL;
    const pgt = this.guestPgt(slot);
    gfn = ipa_pfn(gfn);
    this.assert_host_shared_guest(pgt, gfn, 1);
    this.kvm_pgtable_stage2_relax_perms(pgt, gfn, prot);
    return 0;
  }

  // ---- pgtable.c's attribute walkers on a guest stage-2 (stage2_update_leaf_attrs, stage2_age_walker) ----

  /** Sets S2AP R/W and clears XN as `prot` asks; never removes a permission. */
  kvm_pgtable_stage2_relax_perms(pgt: KvmPgtable, gfn: number, prot: Prot): void {
    const set = (prot.r ? KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R : 0) | (prot.w ? KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W : 0);
    pgt.update_leaves(gfn, 1, (e) => ({ lo: e.lo | set, hi: prot.x ? e.hi & ~KVM_PTE_LEAF_ATTR_HI_XN : e.hi }));
  }

  /** Clears S2AP_W on every valid leaf of the range. */
  kvm_pgtable_stage2_wrprotect(pgt: KvmPgtable, gfn: number, nr: number): void {
    pgt.update_leaves(gfn, nr, (e) => ({ lo: e.lo & ~KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W, hi: e.hi }));
  }

  /** 1 if a valid leaf of the range has AF, which `mkold` clears on every such leaf; else 0. */
  kvm_pgtable_stage2_test_clear_young(pgt: KvmPgtable, gfn: number, nr: number, mkold: boolean): number {
    let young = 0;
    pgt.update_leaves(gfn, nr, (e) => {
      if (!(e.lo & KVM_PTE_LEAF_ATTR_LO_AF)) return e;
      young = 1;
      return mkold ? { lo: e.lo & ~KVM_PTE_LEAF_ATTR_LO_AF, hi: e.hi } : e;
    });
    return young;
  }

  /** Sets AF on the gfn's leaf, if valid. */
  kvm_pgtable_stage2_mkyoung(pgt: KvmPgtable, gfn: number): void {
    pgt.update_leaves(gfn, 1, (e) => ({ lo: e.lo | KVM_PTE_LEAF_ATTR_LO_AF, hi: e.hi }));
  }

  /** The VM-by-handle calls' common start: get_np_pkvm_hyp_vm, the size check, the debug assertion. */
  private guest_range(handle: number, gfn: number, nr: number): KvmPgtable | number {
    const slot = this.slotOf(handle);
    if (slot < 0) return -EINVAL;
    const size = this.guest_check_transition_size(gfn, nr);
    if (size) return size;
    const pgt = this.guestPgt(slot);
    this.assert_host_shared_guest(pgt, gfn, nr);
    return pgt;
  }

  /** __pkvm_host_wrprotect_guest: W off on every leaf of the range. */
  __pkvm_host_wrprotect_guest(gfn: number, nr: number, handle: number): number {
    gfn = ipa_pfn(gfn);
    const pgt = this.guest_range(handle, gfn, nr);
    if (typeof pgt === 'number') return pgt;
    this.kvm_pgtable_stage2_wrprotect(pgt, gfn, nr);
    return 0;
  }

  /** kvm_pgtable_stage2_test_clear_young: 1 if a leaf had AF, cleared when `mkold`. */
  __pkvm_host_test_clear_young_guest(gfn: number, nr: number, mkold: boolean, handle: number): number {
    gfn = ipa_pfn(gfn);
    const pgt = this.guest_range(handle, gfn, nr);
    return typeof pgt === 'number' ? pgt : this.kvm_pgtable_stage2_test_clear_young(pgt, gfn, nr, mkold);
  }

  /** kvm_pgtable_stage2_mkyoung on the loaded vCPU's VM: sets AF on the gfn's leaf. */
  __pkvm_host_mkyoung_guest(gfn: number): number {
    const slot = this.loaded_vm_slot();
    if (slot < 0) return -EINVAL;
    const pgt = this.guestPgt(slot);
    gfn = ipa_pfn(gfn);
    this.assert_host_shared_guest(pgt, gfn, 1);
    this.kvm_pgtable_stage2_mkyoung(pgt, gfn);
    return 0;
  }

  /** The lowest VM slot not in use, or -1 when all MAX_VMS are. */
  find_free_vm_slot(): number {
    for (let slot = 0; slot < MAX_VMS; slot++) if (!this.mem.cell(this.vmCells + slot * SLOT_CELLS + IN_USE)) return slot;
    return -1;
  }

  __pkvm_init_vm(pfn: number, nr: number): number {
    ({ addr: pfn, size: nr } = this.phys_range(pfn, nr));
    if (nr < VM_MIN_PAGES) return -EINVAL;
    // map_donated_memory: a donation that fails is NULL, and __pkvm_init_vm answers -ENOMEM.
    const r = this.__host_check_page_state_range(pfn, nr, PKVM_PAGE_OWNED) || this.__hyp_check_page_state_range(pfn, nr, PKVM_NOPAGE);
    if (r !== 0) return -ENOMEM;
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

  /** WARN_ON(hyp_page_count(hyp_vm)): a loaded vCPU holds a reference on its VM's metadata page. */
  check_vm_unreferenced(handle: number, metadata: number): void {
    BUG_ON(this.vmemmap.refcount(metadata) !== 0, `vm 0x${handle.toString(16)} torn down with a vCPU loaded`);
  }

  __pkvm_teardown_vm(handle: number): number {
    const slot = this.slotOf(handle);
    if (slot < 0) return -ENOENT;
    const base = this.vmCells + slot * SLOT_CELLS;
    const first = this.mem.cell(base + FIRST);
    const nr = this.mem.cell(base + NR);
    this.check_vm_unreferenced(handle, first);
    // The guest stage-2 is destroyed, host state untouched: a page still mapped stays SHARED_OWNED
    // with its share count (6.16 reclaim_pgtable_pages).
    this.guestPgt(slot).destroy();
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
