// The checker's own read-only page-table walker: how the MMU would translate an address, computed
// from raw descriptors in simulated memory. It shares nothing with hyp's walker but the bit layout,
// so the invariants "really walk" the tables instead of asking hyp's bookkeeping.
import type { PhysMem } from '../hyp/memory';
import { KVM_PGTABLE_LAST_LEVEL, KVM_PTE_TYPE, KVM_PTE_VALID, kvm_invalid_pte_owner, kvm_pte_to_pfn } from '../hyp/pgtable';
import type { KvmPgtable } from '../hyp/pgtable';

export interface Translation {
  readonly level: number;
  readonly lo: number;
  readonly hi: number;
}

const SHIFT = [27, 18, 9, 0];
const LAST = KVM_PGTABLE_LAST_LEVEL;
/** The low bits of a table descriptor (above the last level). */
const TABLE_BITS = KVM_PTE_VALID | KVM_PTE_TYPE;

export function translate(mem: PhysMem, pgt: KvmPgtable, addr: number): Translation {
  // Addresses are pfns below 2^28 (the 40-bit space), so 32-bit shifts are exact.
  let level = pgt.start_level;
  let i = (addr >>> SHIFT[level]) & (512 * pgt.pgd_pages - 1);
  let words = mem.pageView(pgt.pgd + (i >>> 9));
  i &= 511;
  for (;;) {
    const lo = words[2 * i];
    const hi = words[2 * i + 1];
    if (level === LAST || (lo & TABLE_BITS) !== TABLE_BITS) return { level, lo, hi };
    words = mem.pageView(kvm_pte_to_pfn(lo, hi));
    level++;
    i = (addr >>> SHIFT[level]) & 511;
  }
}

/** The page a valid leaf maps `addr` to (identity maps must give `addr` back). */
export function outputPfn(t: Translation, addr: number): number {
  return kvm_pte_to_pfn(t.lo, t.hi) + (addr & ((1 << SHIFT[t.level]) - 1));
}

/**
 * The level-3 descriptors for [first, first + nr), read straight from the level-3 tables (one
 * translation per 2 MiB chunk); a page not mapped through a level-3 table is visited with its entry at the level the walk stopped.
 */
export function eachPageEntry(mem: PhysMem, pgt: KvmPgtable, first: number, nr: number, visit: (pfn: number, lo: number, hi: number, level: number) => boolean): boolean {
  for (let p = first; p < first + nr; ) {
    const chunkEnd = Math.min(first + nr, (p | 511) + 1);
    const t = translate(mem, pgt, p);
    if (t.level !== LAST) {
      if (!visit(p, t.lo, t.hi, t.level)) return false;
      p++;
      continue;
    }
    // Find the table holding p's entry: translate stopped at level 3, so walk once more for its pfn.
    const table = tableOf(mem, pgt, p);
    const words = mem.pageView(table);
    for (; p < chunkEnd; p++) if (!visit(p, words[2 * (p & 511)], words[2 * (p & 511) + 1], LAST)) return false;
  }
  return true;
}

/** The level-3 table page that holds `addr`'s entry (the caller knows there is one). */
function tableOf(mem: PhysMem, pgt: KvmPgtable, addr: number): number {
  let level = pgt.start_level;
  let i = (addr >>> SHIFT[level]) & (512 * pgt.pgd_pages - 1);
  let table = pgt.pgd + (i >>> 9);
  i &= 511;
  while (level < LAST) {
    const words = mem.pageView(table);
    table = kvm_pte_to_pfn(words[2 * i], words[2 * i + 1]);
    level++;
    i = (addr >>> SHIFT[level]) & 511;
  }
  return table;
}

export const isValid = (t: Translation): boolean => (t.lo & KVM_PTE_VALID) !== 0;
export const isZero = (t: Translation): boolean => t.lo === 0 && t.hi === 0;
export const annotationOwner = (t: Translation): number => kvm_invalid_pte_owner(t.lo);

/**
 * Called for every table page of a stage, after its entries were visited, with its non-zero entries
 * and the range of addresses it translates ([base, base + span)).
 */
export type TableVisit = (table: number, entries: number, base: number, span: number) => void;
/** Called for every non-zero entry that is not a table: the first address it covers, its level, its words. */
export type LeafVisit = (addr: number, level: number, lo: number, hi: number) => void;

/**
 * What a scan in `recording` mode remembers of every table page: where it was (base and level), its
 * entry count, the tables it points to (pfn and base, in pairs) and the leaves it reported (address,
 * level and the two words, in fours). A later scan given the memo does not read such a table again
 * when it reaches it at the same place and `unchanged` says it was not written since the recording:
 * it has the same entries, so the same children and leaves.
 */
export interface ScanMemo {
  readonly tables: Map<number, MemoTable>;
  recording: boolean;
  /** The quiet range of the recording scan (the leaves it recorded depend on it). */
  quiet?: readonly [number, number];
  unchanged: (table: number) => boolean;
}

interface MemoTable {
  readonly base: number;
  readonly level: number;
  readonly entries: number;
  readonly children: readonly number[];
  readonly leaves: readonly number[];
}

/**
 * Every table page and every non-zero leaf of a stage, read straight from the descriptors. A table
 * entry is followed wherever it points; a table reached a second time (a corrupted tree) is reported
 * to `onTable` again but not entered again, so the scan stays linear in the number of table pages.
 * Leaves that lie wholly inside `[quiet[0], quiet[1])` are counted but not reported, and `memo`
 * saves reading unchanged tables again.
 */
export function scanStage(mem: PhysMem, pgt: KvmPgtable, onTable: TableVisit, onLeaf: LeafVisit, quiet: readonly [number, number] = [0, 0], memo?: ScanMemo): void {
  const span = 2 ** SHIFT[pgt.start_level] * 512;
  if (memo?.recording) memo.quiet = quiet;
  const usable = memo !== undefined && (memo.recording || (memo.quiet?.[0] === quiet[0] && memo.quiet?.[1] === quiet[1]));
  const scan: Scan = { mem, entered: new Map(), onTable, onLeaf, quietFrom: quiet[0], quietTo: quiet[1], memo: usable ? memo : undefined };
  for (let i = 0; i < pgt.pgd_pages; i++) scanTable(scan, pgt.pgd + i, pgt.start_level, i * span);
}

interface Scan {
  readonly mem: PhysMem;
  /** Tables entered so far, with their entry counts. */
  readonly entered: Map<number, number>;
  readonly onTable: TableVisit;
  readonly onLeaf: LeafVisit;
  readonly quietFrom: number;
  readonly quietTo: number;
  readonly memo: ScanMemo | undefined;
}

function scanTable(scan: Scan, table: number, level: number, base: number): void {
  const size = 2 ** SHIFT[level];
  const again = scan.entered.get(table);
  if (again !== undefined) return scan.onTable(table, again, base, 512 * size);
  const memo = scan.memo;
  const known = memo?.tables.get(table);
  if (known !== undefined && !memo!.recording && known.base === base && known.level === level && memo!.unchanged(table)) return replay(scan, table, known, size);
  scan.entered.set(table, 0);
  const words = scan.mem.pageView(table);
  const children: number[] = [];
  const leaves: number[] = [];
  let entries = 0;
  for (let i = 0; i < 512; i++) {
    const lo = words[2 * i];
    const hi = words[2 * i + 1];
    if (lo === 0 && hi === 0) continue;
    entries++;
    const addr = base + i * size;
    if (level < LAST && (lo & TABLE_BITS) === TABLE_BITS) {
      children.push(kvm_pte_to_pfn(lo, hi), addr);
      scanTable(scan, kvm_pte_to_pfn(lo, hi), level + 1, addr);
    } else if (addr < scan.quietFrom || addr + size > scan.quietTo) {
      leaves.push(addr, level, lo, hi);
      scan.onLeaf(addr, level, lo, hi);
    }
  }
  if (memo?.recording) memo.tables.set(table, { base, level, entries, children, leaves });
  scan.entered.set(table, entries);
  scan.onTable(table, entries, base, 512 * size);
}

/** A table as the memo recorded it: its children scanned, its leaves reported, without reading it. */
function replay(scan: Scan, table: number, known: MemoTable, size: number): void {
  scan.entered.set(table, known.entries);
  const { children, leaves } = known;
  for (let c = 0; c < children.length; c += 2) scanTable(scan, children[c], known.level + 1, children[c + 1]);
  for (let l = 0; l < leaves.length; l += 4) scan.onLeaf(leaves[l], leaves[l + 1], leaves[l + 2], leaves[l + 3]);
  scan.onTable(table, known.entries, known.base, 512 * size);
}
