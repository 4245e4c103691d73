// kvm_pgtable: multi-level page tables (4 KiB granule) in simulated memory, with the kernel's
// descriptor encoding. A descriptor is 64 bits, kept as two 32-bit words (lo = bits 31:0,
// hi = bits 63:32) so that the hot path never needs BigInt. Addresses are in pages (pfn / gfn).
// Descriptors are built only by the constructors below (pgtable.c's kvm_init_*_pte) and read
// through its accessors, so the bit layout has one home.
import type { PhysMem } from './memory';
import type { HypVmemmap } from './vmemmap';

// Descriptor bits (lo word).
export const KVM_PTE_VALID = 1;
/** Table descriptor at levels 0-2, page descriptor at level 3; clear = block. */
export const KVM_PTE_TYPE = 2;
export const KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_NORMAL = 0xf << 2;
export const KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_DEVICE = 0x1 << 2;
export const KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R = 1 << 6;
export const KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W = 1 << 7;
export const KVM_PTE_LEAF_ATTR_LO_SH_IS = 3 << 8;
export const KVM_PTE_LEAF_ATTR_LO_AF = 1 << 10;
// Descriptor bits (hi word: bit 32 + n is bit n here).
export const KVM_PTE_LEAF_ATTR_HI_XN = 1 << (54 - 32);
/** Software bit 0 (bit 55): the page is SHARED_OWNED by this component. */
export const KVM_PGTABLE_PROT_SW0 = 1 << (55 - 32);
/** Software bit 1 (bit 56): the page is SHARED_BORROWED by this component. */
export const KVM_PGTABLE_PROT_SW1 = 1 << (56 - 32);
/** An invalid descriptor carrying an owner id in bits [9:2] is an ownership annotation. */
export const KVM_INVALID_PTE_OWNER_SHIFT = 2;
export const KVM_INVALID_PTE_OWNER_MASK = 0xff << KVM_INVALID_PTE_OWNER_SHIFT;

// Levels of a 4 KiB-granule walk, named by what one entry at that level maps.
/** Level 0: 512 GiB per entry, tables only (hyp's stage-1 starts here). */
export const KVM_LEVEL_512G = 0;
/** Level 1: 1 GiB blocks (the host and guest stage-2s start here, with concatenated PGD pages). */
export const KVM_LEVEL_1G = 1;
/** Level 2: 2 MiB blocks. */
export const KVM_LEVEL_2M = 2;
/** Level 3: 4 KiB pages; no tables below. */
export const KVM_PGTABLE_LAST_LEVEL = 3;
export const KVM_LEVEL_4K = KVM_PGTABLE_LAST_LEVEL;
export const PTRS_PER_PTE = 512;

/** Pages covered by one entry at `level` (level 3: one page; 2: 2 MiB; 1: 1 GiB; 0: 512 GiB). */
const GRANULE_SHIFT = [27, 18, 9, 0];
export const kvm_granule_pages = (level: number): number => 2 ** GRANULE_SHIFT[level];
/** Levels at which a 4 KiB-granule descriptor may be a block. */
export const kvm_level_supports_block_mapping = (level: number): boolean => level === KVM_LEVEL_1G || level === KVM_LEVEL_2M;

/** kvm_pte_t: one descriptor as its two words. Also the type of leaf attributes (only attribute bits set). */
export interface KvmPte {
  readonly lo: number;
  readonly hi: number;
}

// ---- accessors (on the words, so that walkers reading raw table pages need no object) ----------

export const kvm_pte_valid = (lo: number): boolean => (lo & KVM_PTE_VALID) !== 0;
export const kvm_pte_table = (lo: number, level: number): boolean => level < KVM_PGTABLE_LAST_LEVEL && (lo & 3) === 3;
/** Output address (as a pfn) of a descriptor: bits [47:12]. */
export const kvm_pte_to_pfn = (lo: number, hi: number): number => (hi & 0xffff) * 0x100000 + (lo >>> 12);
export const kvm_pfn_to_pte_lo = (pfn: number): number => (pfn % 0x100000) * 0x1000;
export const kvm_pfn_to_pte_hi = (pfn: number): number => Math.floor(pfn / 0x100000) & 0xffff;
export const kvm_invalid_pte_owner = (lo: number): number => (lo & KVM_INVALID_PTE_OWNER_MASK) >>> KVM_INVALID_PTE_OWNER_SHIFT;

// ---- constructors (pgtable.c) -------------------------------------------------------------------

/** kvm_init_table_pte: a table entry pointing at the table page `childPfn`. */
export const kvm_init_table_pte = (childPfn: number): KvmPte => ({
  lo: kvm_pfn_to_pte_lo(childPfn) | KVM_PTE_VALID | KVM_PTE_TYPE,
  hi: kvm_pfn_to_pte_hi(childPfn),
});

/** kvm_init_valid_leaf_pte: a valid leaf mapping `pfn` at `level` (a page at level 3, a block above). */
export const kvm_init_valid_leaf_pte = (pfn: number, attr: KvmPte, level: number): KvmPte => ({
  lo: attr.lo | KVM_PTE_VALID | (level === KVM_PGTABLE_LAST_LEVEL ? KVM_PTE_TYPE : 0) | kvm_pfn_to_pte_lo(pfn),
  hi: attr.hi | kvm_pfn_to_pte_hi(pfn),
});

/** kvm_init_invalid_leaf_owner: an invalid entry annotated with an owner id (owner 0, the host, is a zero entry). */
export const kvm_init_invalid_leaf_owner = (owner_id: number): KvmPte => ({ lo: owner_id << KVM_INVALID_PTE_OWNER_SHIFT, hi: 0 });

/** The zero entry: nothing mapped, nothing annotated. */
export const KVM_PTE_ZERO: KvmPte = { lo: 0, hi: 0 };

/** Where page-table pages come from and go back to (kvm_pgtable_mm_ops). */
export interface KvmPgtableMmOps {
  zalloc_page(): number;
  put_page(pfn: number): void;
}

/**
 * What kvm_pgtable_get_leaf found: the first non-table entry on an address's path, and its level. A
 * class rather than an object literal so that V8 gives it a hidden class of its own: a literal of the
 * same shape as the checker's walker results ({ level, lo, hi }) made both call sites slower (the
 * lockstep ran ~20% slower).
 */
export class KvmPgtableLeaf implements KvmPte {
  constructor(
    readonly level: number,
    readonly lo: number,
    readonly hi: number,
  ) {}
}

/** What a visitor sees of one entry. */
export interface WalkEntry extends KvmPte {
  /** First page the entry translates, and its level. */
  readonly addr: number;
  readonly level: number;
  /** The table page holding the entry, and the entry's index in it. */
  readonly table: number;
  readonly index: number;
}

export interface KvmPgtableVisitor {
  /** Every non-zero, non-table entry (leaf, block, annotation) in the range. */
  leaf?(e: WalkEntry): void;
  /** Every table entry, before its children (pre) and after them (post). */
  tablePre?(e: WalkEntry): void;
  tablePost?(e: WalkEntry): void;
}

/** struct kvm_pgtable, as kvm_pgtable_*_init receives it: the table's fields, by name. */
export type KvmPgtableOptions = Pick<KvmPgtable, 'mem' | 'vmemmap' | 'mm_ops' | 'start_level' | 'pgd' | 'pgd_pages' | 'ia_pages'>;

export class KvmPgtable {
  readonly mem: PhysMem;
  readonly vmemmap: HypVmemmap;
  readonly mm_ops: KvmPgtableMmOps;
  /** First level of the walk (KVM_LEVEL_512G or KVM_LEVEL_1G). */
  readonly start_level: number;
  /** The PGD's first page, and how many concatenated pages it has. */
  readonly pgd: number;
  readonly pgd_pages: number;
  /** Pages of input address space covered. */
  readonly ia_pages: number;
  // The path of the last walk_to: the table page and index of the entry met at each level. Private
  // scratch, filled by walk_to and read only by the method that called it (before any other walk),
  // so that a walk allocates nothing; what a caller gets back is returned, never left here.
  private readonly pathTable = new Float64Array(KVM_PGTABLE_LAST_LEVEL + 1);
  private readonly pathIndex = new Int32Array(KVM_PGTABLE_LAST_LEVEL + 1);

  constructor(o: KvmPgtableOptions) {
    this.mem = o.mem;
    this.vmemmap = o.vmemmap;
    this.mm_ops = o.mm_ops;
    this.start_level = o.start_level;
    this.pgd = o.pgd;
    this.pgd_pages = o.pgd_pages;
    this.ia_pages = o.ia_pages;
  }

  /** kvm_pgtable_init: zeroes the PGD pages and takes their first reference. */
  init(): void {
    for (let i = 0; i < this.pgd_pages; i++) {
      this.mem.zero_page('hyp', this.pgd + i);
      this.vmemmap.page_ref_add(this.pgd + i, 1);
    }
  }

  /** The index of the entry translating `addr` at `level`, in that level's table. */
  private index(addr: number, level: number): number {
    // Input addresses are pfns below 2^28 (checked by every caller), so 32-bit shifts are exact.
    return (addr >>> GRANULE_SHIFT[level]) & (level === this.start_level ? PTRS_PER_PTE * this.pgd_pages - 1 : PTRS_PER_PTE - 1);
  }

  /** Writes a descriptor, keeping the containing table page's refcount at 1 + non-zero entries. */
  private writeEntry(table: number, index: number, lo: number, hi: number): void {
    const oldLo = this.mem.read32(table, 2 * index);
    const oldHi = this.mem.read32(table, 2 * index + 1);
    const wasSet = oldLo !== 0 || oldHi !== 0;
    const isSet = lo !== 0 || hi !== 0;
    if (oldLo !== lo >>> 0) this.mem.write32('hyp', table, 2 * index, lo);
    if (oldHi !== hi >>> 0) this.mem.write32('hyp', table, 2 * index + 1, hi);
    if (wasSet !== isSet) this.vmemmap.page_ref_add(table, isSet ? 1 : -1);
  }

  /** Walks to the first non-table entry for `addr`, recording the path; returns its level. */
  private walk_to(addr: number): number {
    let level = this.start_level;
    let index = this.index(addr, level);
    let table = this.pgd + Math.floor(index / PTRS_PER_PTE);
    index %= PTRS_PER_PTE;
    for (;;) {
      this.pathTable[level] = table;
      this.pathIndex[level] = index;
      const words = this.mem.pageView(table);
      const lo = words[2 * index];
      if (!kvm_pte_table(lo, level)) return level;
      table = kvm_pte_to_pfn(lo, words[2 * index + 1]);
      level++;
      index = this.index(addr, level);
    }
  }

  /**
   * kvm_pgtable_get_leaf: the first non-table entry for `addr`, as a fresh result. The lookup is on
   * every page-state check of the hot lockstep path. It used to leave its result in fields of the
   * table that set_entry, unmap_entry and free_table overwrote, and callers read what another call
   * left; a small object per lookup that does not outlive its caller costs no measurable time (V8
   * allocates it in the young generation or not at all), so the result is returned instead.
   */
  get_leaf(addr: number): KvmPgtableLeaf {
    const level = this.walk_to(addr);
    const words = this.mem.pageView(this.pathTable[level]);
    const index = this.pathIndex[level];
    return new KvmPgtableLeaf(level, words[2 * index], words[2 * index + 1]);
  }

  /**
   * Installs one entry at `level` for `addr`, creating tables on the way down. A block or annotation
   * met above `level` is replaced by an empty table (the rest of it is re-faulted lazily); a table
   * met at `level` is freed.
   */
  set_entry(addr: number, level: number, pte: KvmPte): void {
    let at = this.walk_to(addr);
    for (; at < level; at++) {
      const child = this.mm_ops.zalloc_page();
      this.vmemmap.page_ref_add(child, 1);
      const table = kvm_init_table_pte(child);
      this.writeEntry(this.pathTable[at], this.pathIndex[at], table.lo, table.hi);
      this.pathTable[at + 1] = child;
      this.pathIndex[at + 1] = this.index(addr, at + 1);
    }
    const t = this.pathTable[level];
    const i = this.pathIndex[level];
    if (at > level) {
      // A table hangs at `level`: free it and everything below before replacing the entry.
      this.free_table(kvm_pte_to_pfn(this.mem.read32(t, 2 * i), this.mem.read32(t, 2 * i + 1)), level + 1);
    }
    this.writeEntry(t, i, pte.lo, pte.hi);
  }

  /** Frees a table page and every table below it (kvm_pgtable_stage2_free_unlinked). */
  private free_table(table: number, level: number): void {
    this.clear_entries(table, level);
    this.vmemmap.page_ref_add(table, -1);
    this.mm_ops.put_page(table);
  }

  /** Clears every entry of a table page at `level`, freeing the tables they point to. */
  private clear_entries(table: number, level: number): void {
    for (let i = 0; i < PTRS_PER_PTE; i++) {
      const lo = this.mem.read32(table, 2 * i);
      const hi = this.mem.read32(table, 2 * i + 1);
      if (lo === 0 && hi === 0) continue;
      if (kvm_pte_table(lo, level)) this.free_table(kvm_pte_to_pfn(lo, hi), level + 1);
      this.writeEntry(table, i, 0, 0);
    }
  }

  /**
   * kvm_pgtable_stage2_destroy, short of the PGD itself: frees every table below it and clears every
   * entry, without looking at what the leaves map.
   */
  destroy(): void {
    for (let t = this.pgd; t < this.pgd + this.pgd_pages; t++) this.clear_entries(t, this.start_level);
  }

  /**
   * Clears the entry for `addr` (at whatever level it is) and frees tables left empty on the way
   * up (not the PGD), as stage-2 and hyp unmap do.
   */
  unmap_entry(addr: number): void {
    let level = this.walk_to(addr);
    this.writeEntry(this.pathTable[level], this.pathIndex[level], 0, 0);
    while (level > this.start_level) {
      const table = this.pathTable[level];
      if (this.vmemmap.refcount(table) !== 1) break;
      this.vmemmap.page_ref_add(table, -1);
      this.mm_ops.put_page(table);
      level--;
      this.writeEntry(this.pathTable[level], this.pathIndex[level], 0, 0);
    }
  }

  /**
   * stage2_update_leaf_attrs' walk: every valid leaf of [addr, addr + nr) is rewritten to what
   * `attrs` makes of it (invalid entries are skipped, as the walker's -EAGAIN is dropped).
   */
  update_leaves(addr: number, nr: number, attrs: (e: WalkEntry) => KvmPte): void {
    this.walk(addr, nr, {
      leaf: (e) => {
        if (!kvm_pte_valid(e.lo)) return;
        const pte = attrs(e);
        this.writeEntry(e.table, e.index, pte.lo, pte.hi);
      },
    });
  }

  /** kvm_pgtable_walk over [addr, addr + nr): calls the visitor for tables and non-zero leaves. */
  walk(addr: number, nr: number, visitor: KvmPgtableVisitor): void {
    const end = Math.min(addr + nr, this.ia_pages);
    if (end <= addr) return;
    const size = kvm_granule_pages(this.start_level);
    const firstIndex = Math.floor(addr / size);
    const lastIndex = Math.min(Math.ceil(end / size), PTRS_PER_PTE * this.pgd_pages);
    for (let i = firstIndex; i < lastIndex; i++) {
      const table = this.pgd + Math.floor(i / PTRS_PER_PTE);
      const words = this.mem.pageView(table);
      const j = i % PTRS_PER_PTE;
      if (words[2 * j] !== 0 || words[2 * j + 1] !== 0) this.walkEntry(table, j, i * size, this.start_level, addr, end, visitor);
    }
  }

  private walkEntry(table: number, index: number, a: number, level: number, from: number, end: number, v: KvmPgtableVisitor): void {
    const words = this.mem.pageView(table);
    const lo = words[2 * index];
    const hi = words[2 * index + 1];
    if (!kvm_pte_table(lo, level)) {
      v.leaf?.({ addr: a, level, lo, hi, table, index });
      return;
    }
    const e: WalkEntry = { addr: a, level, lo, hi, table, index };
    v.tablePre?.(e);
    const child = kvm_pte_to_pfn(lo, hi);
    const childWords = this.mem.pageView(child);
    const childLevel = level + 1;
    // Below the last table level only leaves remain: skip them when nobody visits leaves.
    if (v.leaf !== undefined || childLevel < KVM_PGTABLE_LAST_LEVEL) {
      const size = kvm_granule_pages(childLevel);
      const first = Math.max(0, Math.floor((from - a) / size));
      const last = Math.min(PTRS_PER_PTE, Math.ceil((end - a) / size));
      for (let i = first; i < last; i++) {
        if (childWords[2 * i] === 0 && childWords[2 * i + 1] === 0) continue;
        if (v.leaf === undefined && !kvm_pte_table(childWords[2 * i], childLevel)) continue;
        this.walkEntry(child, i, a + i * size, childLevel, from, end, v);
      }
    }
    v.tablePost?.(e);
  }
}
