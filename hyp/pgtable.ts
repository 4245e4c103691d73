// kvm_pgtable: multi-level page tables (4 KiB granule) in simulated memory, with the kernel's
// descriptor encoding. A descriptor is 64 bits, kept as two 32-bit words (lo = bits 31:0,
// hi = bits 63:32) so that the hot path never needs BigInt. Addresses are in pages (pfn / gfn).
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

export const KVM_PGTABLE_LAST_LEVEL = 3;
export const PTRS_PER_PTE = 512;

/** Pages covered by one entry at `level` (level 3: one page; 2: 2 MiB; 1: 1 GiB; 0: 512 GiB). */
const GRANULE_SHIFT = [27, 18, 9, 0];
export const kvm_granule_pages = (level: number): number => 2 ** GRANULE_SHIFT[level];
/** Levels at which a 4 KiB-granule descriptor may be a block. */
export const kvm_level_supports_block_mapping = (level: number): boolean => level === 1 || level === 2;

export const kvm_pte_valid = (lo: number): boolean => (lo & KVM_PTE_VALID) !== 0;
export const kvm_pte_table = (lo: number, level: number): boolean => level < KVM_PGTABLE_LAST_LEVEL && (lo & 3) === 3;
/** Output address (as a pfn) of a descriptor: bits [47:12]. */
export const kvm_pte_to_pfn = (lo: number, hi: number): number => (hi & 0xffff) * 0x100000 + (lo >>> 12);
export const kvm_pfn_to_pte_lo = (pfn: number): number => (pfn % 0x100000) * 0x1000;
export const kvm_pfn_to_pte_hi = (pfn: number): number => Math.floor(pfn / 0x100000) & 0xffff;
export const kvm_invalid_pte_owner = (lo: number): number => (lo & KVM_INVALID_PTE_OWNER_MASK) >>> KVM_INVALID_PTE_OWNER_SHIFT;

/** Where page-table pages come from and go back to (kvm_pgtable_mm_ops). */
export interface KvmPgtableMmOps {
  zalloc_page(): number;
  put_page(pfn: number): void;
}

/** What a visitor sees of one entry. */
export interface WalkEntry {
  /** First page the entry translates, its level, and its descriptor words. */
  readonly addr: number;
  readonly level: number;
  readonly lo: number;
  readonly hi: number;
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

export class KvmPgtable {
  // Result of the last get_leaf, kept in fields so that lookups allocate nothing.
  leafLevel = 0;
  leafLo = 0;
  leafHi = 0;
  leafTable = 0;
  leafIndex = 0;
  private readonly pathTable = new Float64Array(KVM_PGTABLE_LAST_LEVEL + 1);
  private readonly pathIndex = new Int32Array(KVM_PGTABLE_LAST_LEVEL + 1);

  constructor(
    readonly mem: PhysMem,
    readonly vmemmap: HypVmemmap,
    readonly mm_ops: KvmPgtableMmOps,
    /** First level of the walk, the PGD's first page, and how many concatenated pages it has. */
    readonly start_level: number,
    readonly pgd: number,
    readonly pgd_pages: number,
    /** Pages of input address space covered. */
    readonly ia_pages: number,
  ) {}

  /** kvm_pgtable_init: zeroes the PGD pages and takes their first reference. */
  init(): void {
    for (let i = 0; i < this.pgd_pages; i++) {
      this.mem.zero_page('hyp', this.pgd + i);
      this.vmemmap.page_ref_add(this.pgd + i, 1);
    }
  }

  /** The table page and index of the entry translating `addr` at `level`, given that level's table. */
  private index(addr: number, level: number): number {
    // Input addresses are pfns below 2^28 (checked by every caller), so 32-bit shifts are exact.
    return (addr >>> GRANULE_SHIFT[level]) & (level === this.start_level ? PTRS_PER_PTE * this.pgd_pages - 1 : PTRS_PER_PTE - 1);
  }

  private readEntry(table: number, index: number): void {
    this.leafLo = this.mem.read32(table, 2 * index);
    this.leafHi = this.mem.read32(table, 2 * index + 1);
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

  /** kvm_pgtable_get_leaf: walks to the first non-table entry for `addr`; result in the leaf* fields. */
  get_leaf(addr: number): void {
    let level = this.start_level;
    let table = this.pgd;
    let index = this.index(addr, level);
    table += Math.floor(index / PTRS_PER_PTE);
    index %= PTRS_PER_PTE;
    for (;;) {
      this.readEntry(table, index);
      this.pathTable[level] = table;
      this.pathIndex[level] = index;
      if (!kvm_pte_table(this.leafLo, level)) break;
      table = kvm_pte_to_pfn(this.leafLo, this.leafHi);
      level++;
      index = this.index(addr, level);
    }
    this.leafLevel = level;
    this.leafTable = table;
    this.leafIndex = index;
  }

  /**
   * Installs one entry at `level` for `addr`, creating tables on the way down. A block or annotation
   * met above `level` is replaced by an empty table (the rest of it is re-faulted lazily); a table
   * met at `level` is freed.
   */
  set_entry(addr: number, level: number, lo: number, hi: number): void {
    this.get_leaf(addr);
    while (this.leafLevel < level) {
      const child = this.mm_ops.zalloc_page();
      this.vmemmap.page_ref_add(child, 1);
      const parentLevel = this.leafLevel;
      this.writeEntry(this.leafTable, this.leafIndex, kvm_pfn_to_pte_lo(child) | KVM_PTE_VALID | KVM_PTE_TYPE, kvm_pfn_to_pte_hi(child));
      this.leafLevel = parentLevel + 1;
      this.leafTable = child;
      this.leafIndex = this.index(addr, this.leafLevel);
      this.pathTable[this.leafLevel] = child;
      this.pathIndex[this.leafLevel] = this.leafIndex;
    }
    const table = this.leafTable;
    const index = this.leafIndex;
    this.readEntry(table, index);
    if (this.leafLevel > level) {
      // A table hangs below `level`: walk back up to the entry at `level` and free what is below.
      const t = this.pathTable[level];
      const i = this.pathIndex[level];
      this.readEntry(t, i);
      this.free_table(kvm_pte_to_pfn(this.leafLo, this.leafHi), level + 1);
      this.writeEntry(t, i, lo, hi);
      return;
    }
    this.writeEntry(table, index, lo, hi);
  }

  /** Frees a table page and every table below it (kvm_pgtable_stage2_free_unlinked). */
  private free_table(table: number, level: number): void {
    for (let i = 0; i < PTRS_PER_PTE; i++) {
      this.readEntry(table, i);
      if (this.leafLo === 0 && this.leafHi === 0) continue;
      if (kvm_pte_table(this.leafLo, level)) this.free_table(kvm_pte_to_pfn(this.leafLo, this.leafHi), level + 1);
      this.writeEntry(table, i, 0, 0);
    }
    this.vmemmap.page_ref_add(table, -1);
    this.mm_ops.put_page(table);
  }

  /**
   * Clears the entry for `addr` (at whatever level it is) and frees tables left empty on the way
   * up (not the PGD), as stage-2 and hyp unmap do.
   */
  unmap_entry(addr: number): void {
    this.get_leaf(addr);
    let level = this.leafLevel;
    this.writeEntry(this.leafTable, this.leafIndex, 0, 0);
    while (level > this.start_level) {
      const table = this.pathTable[level];
      if (this.vmemmap.refcount(table) !== 1) break;
      this.vmemmap.page_ref_add(table, -1);
      this.mm_ops.put_page(table);
      level--;
      this.writeEntry(this.pathTable[level], this.pathIndex[level], 0, 0);
    }
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
