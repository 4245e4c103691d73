// mem_protect.c: the host stage-2 (a lazily built identity map), hyp's stage-1, page-state checks
// and the ownership transitions between host, hyp and the secure world (ffa).
import { EAGAIN, EBUSY, EINVAL, EPERM, ERANGE } from '../types/errno';
import { PA_PFNS, type MachineConfig } from '../types/config';
import { kernelOf, pinLimit, U64_PFNS, type KernelSemantics } from '../types/kernel';
import { BUG_ON } from './bug';
import { HostFaultLog } from './fault-log';
import { PhysMem } from './memory';
import {
  KVM_LEVEL_1G,
  KVM_LEVEL_4K,
  KVM_LEVEL_512G,
  KVM_PGTABLE_LAST_LEVEL,
  KVM_PGTABLE_PROT_SW0,
  KVM_PGTABLE_PROT_SW1,
  KVM_PTE_LEAF_ATTR_HI_XN,
  KVM_PTE_LEAF_ATTR_LO_AF,
  KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_DEVICE,
  KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_NORMAL,
  KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R,
  KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W,
  KVM_PTE_LEAF_ATTR_LO_SH_IS,
  KvmPgtable,
  type KvmPgtableLeaf,
  type KvmPte,
  kvm_granule_pages,
  kvm_init_invalid_leaf_owner,
  kvm_init_valid_leaf_pte,
  kvm_level_supports_block_mapping,
  kvm_pte_valid,
} from './pgtable';
import { HypPool } from './pool';
import { HOST_PGD_PAGES, HYP_PGD_PAGES, hypLayout, type HypLayout } from './setup';
import { HYP_PAGE_FFA_SHARED, HYP_PAGE_INTERNAL, HypVmemmap } from './vmemmap';

/** Page states as the kernel names them (SEMANTICS §1). */
export const PKVM_PAGE_OWNED = 0;
export const PKVM_PAGE_SHARED_OWNED = 1;
export const PKVM_PAGE_SHARED_BORROWED = 2;
export const PKVM_NOPAGE = 3;

/** Owner ids carried by annotations: host 0 (a zero entry), hyp 1. */
export const PKVM_ID_HOST = 0;
export const PKVM_ID_HYP = 1;

/** pkvm_mkstate: leaf attributes `attr` carrying a page state in the software bits. */
export const pkvm_mkstate = (attr: KvmPte, state: number): KvmPte => ({
  lo: attr.lo,
  hi: attr.hi | (state === PKVM_PAGE_SHARED_OWNED ? KVM_PGTABLE_PROT_SW0 : state === PKVM_PAGE_SHARED_BORROWED ? KVM_PGTABLE_PROT_SW1 : 0),
});
/** pkvm_getstate: the page state a valid leaf's software bits carry. */
export const pkvm_getstate = (hi: number): number =>
  hi & KVM_PGTABLE_PROT_SW0 ? PKVM_PAGE_SHARED_OWNED : hi & KVM_PGTABLE_PROT_SW1 ? PKVM_PAGE_SHARED_BORROWED : PKVM_PAGE_OWNED;

/** Host stage-2 leaf attributes: memory is normal, RW, inner shareable; MMIO is device, RW, never executable. */
const HOST_MEM_ATTR: KvmPte = { lo: KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_NORMAL | KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R | KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W | KVM_PTE_LEAF_ATTR_LO_SH_IS | KVM_PTE_LEAF_ATTR_LO_AF, hi: 0 };
const HOST_MMIO_ATTR: KvmPte = { lo: KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_DEVICE | KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R | KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W | KVM_PTE_LEAF_ATTR_LO_AF, hi: KVM_PTE_LEAF_ATTR_HI_XN };
/** Hyp stage-1 leaf attributes (PAGE_HYP): inner shareable, never executable. */
const PAGE_HYP_ATTR: KvmPte = { lo: KVM_PTE_LEAF_ATTR_LO_SH_IS | KVM_PTE_LEAF_ATTR_LO_AF, hi: KVM_PTE_LEAF_ATTR_HI_XN };

/** The first page after the block (at `level`) that holds `pfn`. */
const nextBlock = (pfn: number, level: number): number => {
  const size = kvm_granule_pages(level);
  return pfn - (pfn % size) + size;
};

export class Hyp {
  readonly mem = new PhysMem();
  readonly vmemmap: HypVmemmap;
  readonly layout: HypLayout;
  readonly faults: HostFaultLog;
  readonly host_pool: HypPool;
  readonly hyp_pool: HypPool;
  readonly guest_reserve: HypPool;
  /** The host stage-2: 40-bit IPA, level 1 start with two concatenated PGD pages. */
  readonly host_mmu: KvmPgtable;
  /** Hyp's stage-1 (hyp VA == PA in this simulation), level 0 start. */
  readonly hyp_pgt: KvmPgtable;
  /** What the modelled kernel version does differently (types/kernel.ts). */
  readonly kernel: KernelSemantics;

  constructor(readonly config: MachineConfig) {
    this.kernel = kernelOf(config);
    this.vmemmap = new HypVmemmap(this.mem, config);
    this.layout = hypLayout(config);
    this.faults = new HostFaultLog(this.mem);
    const pool = (name: string, [first, nr]: readonly [number, number]) => new HypPool(this.mem, name, first, nr);
    this.host_pool = pool('host stage-2', this.layout.hostPool);
    this.hyp_pool = pool('hyp stage-1', this.layout.hypPool);
    this.guest_reserve = pool('guest reserve', this.layout.guestReserve);
    const ops = (p: HypPool) => ({ zalloc_page: () => p.alloc(), put_page: (pfn: number) => p.free(pfn) });
    const { mem, vmemmap } = this;
    this.host_mmu = new KvmPgtable({ mem, vmemmap, mm_ops: ops(this.host_pool), start_level: KVM_LEVEL_1G, pgd: this.layout.hostPgd, pgd_pages: HOST_PGD_PAGES, ia_pages: PA_PFNS });
    this.hyp_pgt = new KvmPgtable({ mem, vmemmap, mm_ops: ops(this.hyp_pool), start_level: KVM_LEVEL_512G, pgd: this.layout.hypPgd, pgd_pages: HYP_PGD_PAGES, ia_pages: PA_PFNS });
    this.host_mmu.init();
    this.hyp_pgt.init();
    // fix_host_ownership: the carve-out is hyp's, annotated in the host stage-2 and mapped at EL2.
    const [first, nr] = this.layout.carveout;
    this.host_stage2_set_owner_locked(first, nr, PKVM_ID_HYP);
    for (let p = first; p < first + nr; p++) {
      this.hyp_map(p, PKVM_PAGE_OWNED);
      this.vmemmap.set_flags(p, HYP_PAGE_INTERNAL, 0);
    }
    this.mem.commit();
  }

  // ---- address ranges -------------------------------------------------------------------------
  // The kernel computes addresses in u64: hyp_pfn_to_phys(pfn) = pfn << PAGE_SHIFT and size =
  // PAGE_SIZE * nr_pages, modulo 2^64. hyp keeps addresses as page numbers, so modulo 2^52.

  /** hyp_pfn_to_phys(pfn) and PAGE_SIZE * nr_pages, as page numbers. */
  phys_range(pfn: number, nr: number): { addr: number; size: number } {
    return { addr: pfn % U64_PFNS, size: nr % U64_PFNS };
  }

  /** find_mem_range: the memory region around `pfn`, or the MMIO gap around it (the last one runs to ULONG_MAX). */
  find_mem_range(pfn: number): { start: number; end: number; memory: boolean } {
    let start = 0;
    for (const [first, nr] of this.config.memory) {
      if (pfn < first) return { start, end: first, memory: false };
      if (pfn < first + nr) return { start: first, end: first + nr, memory: true };
      start = first + nr;
    }
    return { start, end: U64_PFNS, memory: false };
  }

  /**
   * is_in_mem_range of the last byte of a range ending at page `end`: it lies in page end - 1, or,
   * for end == 0, it is byte 2^64 - 1, which no range holds (the last gap stops one byte short).
   */
  is_in_mem_range(end: number, range: { start: number; end: number }): boolean {
    return end > 0 && range.start <= end - 1 && end - 1 < range.end;
  }

  /** range_is_memory: [start, end) lies inside one memory region. */
  range_is_memory(start: number, end: number): boolean {
    const r = this.find_mem_range(start);
    return r.memory && this.is_in_mem_range(end, r);
  }

  /** check_range_allowed_memory (6.16): -EINVAL unless the range lies in one region or gap; -EPERM for a gap. */
  check_range_allowed_memory(pfn: number, nr: number): number {
    const { addr, size } = this.phys_range(pfn, nr);
    const range = this.find_mem_range(addr);
    if (!this.is_in_mem_range((addr + size) % U64_PFNS, range)) return -EINVAL;
    return range.memory ? 0 : -EPERM;
  }

  /**
   * _kvm_pgtable_walk's bounds (6.12): -ERANGE when the start or the end lies past the table's input
   * range, else the number of pages the walk covers: none when end <= addr (an empty or wrapping range).
   */
  kvm_pgtable_walk_pages(pgt: KvmPgtable, addr: number, size: number): number {
    const end = (addr + size) % U64_PFNS;
    if (addr > pgt.ia_pages || end > pgt.ia_pages) return -ERANGE;
    return end > addr ? end - addr : 0;
  }

  // ---- page states ----------------------------------------------------------------------------

  /** The host's state of a page, from its host stage-2 leaf. */
  host_get_page_state(leaf: KvmPgtableLeaf): number {
    if (kvm_pte_valid(leaf.lo)) return pkvm_getstate(leaf.hi);
    return leaf.lo === 0 && leaf.hi === 0 ? PKVM_PAGE_OWNED : PKVM_NOPAGE; // zero: host-owned, not faulted in yet
  }

  /** Hyp's state of a page, from its stage-1 leaf. */
  hyp_get_page_state(leaf: KvmPgtableLeaf): number {
    return kvm_pte_valid(leaf.lo) ? pkvm_getstate(leaf.hi) : PKVM_NOPAGE;
  }

  /** The host's state of a memory page. */
  host_page_state(pfn: number): number {
    return this.host_get_page_state(this.host_mmu.get_leaf(pfn));
  }

  /** Hyp's state of a page. */
  hyp_page_state(pfn: number): number {
    return this.hyp_get_page_state(this.hyp_pgt.get_leaf(pfn));
  }

  /**
   * __host_check_page_state_range: the version's range check (types/kernel.ts), then the host state
   * of the pages it covers, one lookup per leaf. Outside memory the state is NOPAGE (6.12
   * host_get_page_state, mem_protect.c:609). Unlike 6.12's walk, a leaf that spans memory and MMIO
   * is looked at again where the memory ends (docs/semantics.md §10 item 2).
   */
  __host_check_page_state_range(pfn: number, nr: number, state: number): number {
    const { addr, size } = this.phys_range(pfn, nr);
    let pages = size;
    if (this.kernel.range.check === 'kvm_pgtable_walk') pages = this.kvm_pgtable_walk_pages(this.host_mmu, addr, size);
    else pages = this.check_range_allowed_memory(pfn, nr) || size;
    if (pages < 0) return pages;
    for (let p = addr; p < addr + pages; ) {
      const span = this.find_mem_range(p);
      if (!span.memory) {
        if (state !== PKVM_NOPAGE) return -EPERM;
        p = span.end;
        continue;
      }
      const leaf = this.host_mmu.get_leaf(p);
      if (this.host_get_page_state(leaf) !== state) return -EPERM;
      p = Math.min(nextBlock(p, leaf.level), span.end);
    }
    return 0;
  }

  /**
   * __hyp_check_page_state_range: 6.12 walks hyp's stage-1 (the simulation maps hyp VA == PA), 6.16
   * reads each page with no range check (RangeRule.hypWalk).
   */
  __hyp_check_page_state_range(pfn: number, nr: number, state: number): number {
    const { addr, size } = this.phys_range(pfn, nr);
    const pages = this.kernel.range.hypWalk ? this.kvm_pgtable_walk_pages(this.hyp_pgt, addr, size) : size;
    if (pages < 0) return pages;
    for (let p = addr; p < addr + pages; ) {
      if (p >= this.hyp_pgt.ia_pages) return state === PKVM_NOPAGE ? 0 : -EPERM; // nothing is mapped there
      const leaf = this.hyp_pgt.get_leaf(p);
      if (this.hyp_get_page_state(leaf) !== state) return -EPERM;
      p = nextBlock(p, leaf.level);
    }
    return 0;
  }

  // ---- host stage-2 updates -------------------------------------------------------------------

  /** Maps host pages (identity, page granular) in `state`. */
  __host_set_page_state_range(pfn: number, nr: number, state: number): void {
    const attr = pkvm_mkstate(HOST_MEM_ATTR, state);
    for (let i = 0; i < nr; i++) this.host_mmu.set_entry(pfn + i, KVM_LEVEL_4K, kvm_init_valid_leaf_pte(pfn + i, attr, KVM_LEVEL_4K));
  }

  /** Annotates pages with their new owner (a zero entry for the host), page by page. */
  host_stage2_set_owner_locked(pfn: number, nr: number, owner_id: number): void {
    const annotation = kvm_init_invalid_leaf_owner(owner_id);
    for (let i = 0; i < nr; i++) this.host_mmu.set_entry(pfn + i, KVM_LEVEL_4K, annotation);
  }

  /**
   * host_stage2_adjust_range: the largest block around `pfn` (1 GiB, 2 MiB, else 4 KiB) that is
   * aligned, inside `range` and wholly unmapped; returns its level, or a negative errno.
   */
  host_stage2_adjust_range(pfn: number, range: { start: number; end: number }): number {
    const leaf = this.host_mmu.get_leaf(pfn);
    if (kvm_pte_valid(leaf.lo)) return -EAGAIN;
    if (leaf.lo !== 0 || leaf.hi !== 0) return -EPERM;
    for (let level = leaf.level; level < KVM_PGTABLE_LAST_LEVEL; level++) {
      const size = kvm_granule_pages(level);
      const start = pfn - (pfn % size);
      if (kvm_level_supports_block_mapping(level) && start >= range.start && start + size <= range.end) return level;
    }
    return KVM_PGTABLE_LAST_LEVEL;
  }

  /** host_stage2_idmap: the host faulted on `pfn`; map the largest block allowed around it. */
  host_stage2_idmap(pfn: number): number {
    const range = this.find_mem_range(pfn);
    const level = this.host_stage2_adjust_range(pfn, range);
    if (level < 0) return level;
    const size = kvm_granule_pages(level);
    const start = pfn - (pfn % size);
    this.host_mmu.set_entry(start, level, kvm_init_valid_leaf_pte(start, range.memory ? HOST_MEM_ATTR : HOST_MMIO_ATTR, level));
    return 0;
  }

  /** The host touches a page (SEMANTICS §4): fault it in if unmapped, inject the abort if foreign. */
  host_access(pfn: number, write: boolean): number {
    if (pfn >= PA_PFNS) return -ERANGE;
    if (!kvm_pte_valid(this.host_mmu.get_leaf(pfn).lo)) {
      const ret = this.host_stage2_idmap(pfn);
      if (ret === -EPERM) {
        this.faults.record(pfn);
        return ret;
      }
      if (ret < 0) return ret;
    }
    if (write && this.find_mem_range(pfn).memory) this.mem.write32('host', pfn, 0, pfn ^ 0x5a5a5a5a);
    return 0;
  }

  // ---- hyp stage-1 ----------------------------------------------------------------------------

  hyp_map(pfn: number, state: number): void {
    this.hyp_pgt.set_entry(pfn, KVM_LEVEL_4K, kvm_init_valid_leaf_pte(pfn, pkvm_mkstate(PAGE_HYP_ATTR, state), KVM_LEVEL_4K));
  }

  hyp_unmap(pfn: number): void {
    this.hyp_pgt.unmap_entry(pfn);
  }

  // ---- the ownership hypercalls ---------------------------------------------------------------

  /** Runs the checks in order; when they pass, applies `effect` to every page from addr up to end (none when end <= addr). */
  transition(pfn: number, nr: number, effect: (p: number) => void, ...checks: (() => number)[]): number {
    for (const c of checks) {
      const ret = c();
      if (ret !== 0) return ret;
    }
    const [addr, end] = this.effect_range(pfn, nr);
    for (let p = addr; p < end; p++) effect(p);
    return 0;
  }

  /** The pages an effect loops over, `for (cur = addr; cur < end; ...)`: none when the end wraps. */
  effect_range(pfn: number, nr: number): [number, number] {
    const { addr, size } = this.phys_range(pfn, nr);
    return addr + size < U64_PFNS ? [addr, addr + size] : [addr, addr];
  }

  __pkvm_host_share_hyp(pfn: number): number {
    return this.transition(
      pfn,
      1,
      (p) => {
        this.__host_set_page_state_range(p, 1, PKVM_PAGE_SHARED_OWNED);
        this.hyp_map(p, PKVM_PAGE_SHARED_BORROWED);
      },
      () => this.__host_check_page_state_range(pfn, 1, PKVM_PAGE_OWNED),
      () => this.__hyp_check_page_state_range(pfn, 1, PKVM_NOPAGE),
    );
  }

  __pkvm_host_unshare_hyp(pfn: number): number {
    return this.transition(
      pfn,
      1,
      (p) => {
        this.hyp_unmap(p);
        this.__host_set_page_state_range(p, 1, PKVM_PAGE_OWNED);
      },
      () => this.__host_check_page_state_range(pfn, 1, PKVM_PAGE_SHARED_OWNED),
      () => this.__hyp_check_page_state_range(pfn, 1, PKVM_PAGE_SHARED_BORROWED),
      () => this.hyp_check_unpinned(pfn),
    );
  }

  /** A page hyp borrows may not be unshared while hyp holds pins on it. */
  hyp_check_unpinned(pfn: number): number {
    return this.vmemmap.refcount(pfn) === 0 ? 0 : -EBUSY;
  }

  __pkvm_host_donate_hyp(pfn: number, nr: number): number {
    return this.transition(
      pfn,
      nr,
      (p) => {
        this.host_stage2_set_owner_locked(p, 1, PKVM_ID_HYP);
        this.hyp_map(p, PKVM_PAGE_OWNED);
      },
      () => this.__host_check_page_state_range(pfn, nr, PKVM_PAGE_OWNED),
      () => this.__hyp_check_page_state_range(pfn, nr, PKVM_NOPAGE),
    );
  }

  __pkvm_hyp_donate_host(pfn: number, nr: number): number {
    return this.transition(
      pfn,
      nr,
      (p) => {
        this.hyp_unmap(p);
        this.host_stage2_set_owner_locked(p, 1, PKVM_ID_HOST);
      },
      () => this.__hyp_check_page_state_range(pfn, nr, PKVM_PAGE_OWNED),
      () => this.hyp_check_not_internal(pfn, nr),
      () => this.__host_check_page_state_range(pfn, nr, PKVM_NOPAGE),
      () => this.hyp_initiate_donation_size(pfn, nr),
    );
  }

  /**
   * hyp_initiate_donation: kvm_pgtable_hyp_unmap must unmap the whole size, or the donation fails
   * with -EFAULT, which do_donate's WARN_ON turns into a panic; a wrapping range unmaps nothing.
   */
  hyp_initiate_donation_size(pfn: number, nr: number): number {
    const { addr, size } = this.phys_range(pfn, nr);
    BUG_ON(this.kernel.range.wrappingUnmapPanics && size > 0 && addr + size >= U64_PFNS, 'do_donate: WARN_ON(__do_donate()) after a short hyp unmap');
    return 0;
  }

  /** Pages hyp uses itself (its reserve, VMs' pages) are never given away. */
  hyp_check_not_internal(pfn: number, nr: number): number {
    const [addr, end] = this.effect_range(pfn, nr);
    for (let p = addr; p < end; p++) if (this.vmemmap.flags(p) & HYP_PAGE_INTERNAL) return -EPERM;
    return 0;
  }

  __pkvm_host_share_ffa(pfn: number, nr: number): number {
    return this.transition(
      pfn,
      nr,
      (p) => {
        this.__host_set_page_state_range(p, 1, PKVM_PAGE_SHARED_OWNED);
        this.vmemmap.set_flags(p, HYP_PAGE_FFA_SHARED, 0);
      },
      () => this.__host_check_page_state_range(pfn, nr, PKVM_PAGE_OWNED),
    );
  }

  __pkvm_host_unshare_ffa(pfn: number, nr: number): number {
    return this.transition(
      pfn,
      nr,
      (p) => {
        this.__host_set_page_state_range(p, 1, PKVM_PAGE_OWNED);
        this.vmemmap.set_flags(p, 0, HYP_PAGE_FFA_SHARED);
      },
      () => this.__host_check_page_state_range(pfn, nr, PKVM_PAGE_SHARED_OWNED),
      () => this.check_ffa_shared(pfn, nr),
    );
  }

  check_ffa_shared(pfn: number, nr: number): number {
    const [addr, end] = this.effect_range(pfn, nr);
    for (let p = addr; p < end; p++) if (!(this.vmemmap.flags(p) & HYP_PAGE_FFA_SHARED)) return -EPERM;
    return 0;
  }

  /** Checks the host's and hyp's states, then takes a reference on each page (hyp_page_ref_inc). */
  hyp_pin_shared_mem(pfn: number, nr: number): number {
    return this.transition(
      pfn,
      nr,
      (p) => this.hyp_page_ref_inc(p),
      () => this.__host_check_page_state_range(pfn, nr, PKVM_PAGE_SHARED_OWNED),
      () => this.__hyp_check_page_state_range(pfn, nr, PKVM_PAGE_SHARED_BORROWED),
    );
  }

  /** No checks: drops a reference on each page (hyp_page_ref_dec); returns nothing in the kernel. */
  hyp_unpin_shared_mem(pfn: number, nr: number): number {
    return this.transition(pfn, nr, (p) => this.hyp_page_ref_dec(p));
  }

  /**
   * hyp_page_ref_inc: `struct hyp_page`'s refcount is a u16, BUG_ON(refcount == USHRT_MAX) (memory.h:54);
   * USHRT_MAX is the machine's pinLimit (types/kernel.ts: a simulation-only override when set).
   */
  hyp_page_ref_inc(pfn: number): void {
    const limit = pinLimit(this.config);
    BUG_ON(this.vmemmap.refcount(pfn) >= limit, `pfn 0x${pfn.toString(16)} pinned ${limit} times`);
    this.vmemmap.page_ref_add(pfn, 1);
  }

  /**
   * hyp_page_ref_dec: BUG_ON(!refcount) (memory.h:60). The kernel would also decrement the count of
   * a page hyp itself allocated (a table page); the simulation refuses every page hyp does not
   * borrow, like the model (docs/semantics.md §10 item 7).
   */
  hyp_page_ref_dec(pfn: number): void {
    const borrowed = this.find_mem_range(pfn).memory && this.hyp_page_state(pfn) === PKVM_PAGE_SHARED_BORROWED;
    BUG_ON(!borrowed || this.vmemmap.refcount(pfn) === 0, `pfn 0x${pfn.toString(16)} unpinned without a pin`);
    this.vmemmap.page_ref_add(pfn, -1);
  }
}
