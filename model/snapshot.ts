// The host stage-2 snapshot (SEMANTICS §5), abstractly: which pages hyp takes from the host and in
// which order, the result, which memcache pages the copy consumes and how many the used-pages array
// records. No page tables: every page the call takes goes back to the host, so on success and on
// failure alike the model's page states are unchanged (the fault log aside, fed by the host's own
// writes before the call, see `snapshotHostPages`).
//
// Two facts about the world are inputs, not model state:
// - `link(pa)`: the 8 bytes at the start of a page as the host left them (a memcache page's next
//   pointer). The host's memory contents are the host's business; hyp reads them after taking the page.
// - `tablePages(pfns)`: how many table pages (below the PGD) the host stage-2 has once `pfns` are
//   annotated as hyp's. It is a property of the host stage-2's *shape* (blocks, lazily faulted
//   ranges, tables left behind by earlier annotations), which the model deliberately does not track;
//   the copy needs exactly one memcache page per table page.
import { EINVAL, ENOMEM, EPERM } from '../types/errno';
import type { SnapshotArgs } from '../types/calls';
import { checkRange, isMemory, pagesVisited, u64Range } from './range';
import { kernelOf } from '../types/kernel';
import { hostState, hypState, page, type State } from './state';

export const SNAPSHOT_PAGE_SIZE = 4096;
/** The host PGD: 40-bit IPA, level 1 start, two concatenated pages. */
export const HOST_PGD_PAGES = 2;
/** Bytes per used-pages entry (a physical address). */
export const USED_ENTRY_BYTES = 8;

export interface SnapshotInputs {
  link(pa: number): number;
  tablePages(pfns: readonly number[]): number;
}

export interface SnapshotEffect {
  /** Errno, or the copy's PGD as a physical address. */
  readonly result: number;
  /** Pages hyp took, one group per donation (descriptor, PGD range, each memcache page, array). */
  readonly units: readonly (readonly number[])[];
  /** Memcache pages (physical addresses) the copy consumed, in pop order ([] on failure). */
  readonly consumed: readonly number[];
  /** How many of them the used-pages array records (its capacity bounds it). */
  readonly recorded: number;
  /**
   * On success, the memcache left over, as hyp writes it back into the descriptor: its head (the
   * link of the last page consumed, or the list head when none was) and its page count.
   */
  readonly leftover: { readonly head: number; readonly nr_pages: number };
}

/** Entries the used-pages array holds: `num_used_pages` is its size in pages, 8 bytes an entry. */
export const usedArrayEntries = (num_used_pages: number): number => (num_used_pages * SNAPSHOT_PAGE_SIZE) / USED_ENTRY_BYTES;

/** The pages the host writes before the call, in order: the descriptor, then each memcache link. */
export const snapshotHostPages = (a: SnapshotArgs): number[] => [a.desc, ...a.mc].map((pa) => Math.floor(pa / SNAPSHOT_PAGE_SIZE));

const aligned = (pa: number) => pa % SNAPSHOT_PAGE_SIZE === 0;

export function __pkvm_host_stage2_snapshot(s: State, a: SnapshotArgs, input: SnapshotInputs): SnapshotEffect {
  const units: number[][] = [];
  const taken = new Set<number>();
  const fail = (result: number): SnapshotEffect => ({ result, units, consumed: [], recorded: 0, leftover: { head: 0, nr_pages: 0 } });
  /** host -> hyp of [pfn, pfn + nr): range rule, then host OWNED and hyp NOPAGE page by page. */
  const donate = (pfn: number, nr: number): number => {
    if (nr === 0) return 0;
    const rule = kernelOf(s.config).range;
    const range = u64Range(pfn, nr);
    const r = checkRange(s.config, rule, range);
    if (r !== 0) return r;
    const visited = pagesVisited(rule, range);
    for (let q = range.pfn; q < range.pfn + visited; q++) {
      const p = page(s, q);
      if (!isMemory(s.config, q) || taken.has(q) || hostState(p) !== 'OWNED' || hypState(p) !== 'NOPAGE') return -EPERM;
    }
    const unit = Array.from({ length: visited }, (_, i) => range.pfn + i);
    for (const p of unit) taken.add(p);
    units.push(unit);
    return 0;
  };
  const pfnOf = (pa: number) => Math.floor(pa / SNAPSHOT_PAGE_SIZE);

  // 1. Take the pages, in the kernel's order, each address's alignment checked before its donation.
  //    Any failure here is -EPERM (the kernel's setup reports only that it failed).
  if (!aligned(a.desc) || donate(pfnOf(a.desc), 1)) return fail(-EPERM);
  if (!aligned(a.pgd) || donate(pfnOf(a.pgd), a.pgd_pages)) return fail(-EPERM);
  const mc: number[] = [];
  let pa = a.mc.length > 0 ? a.mc[0] : 0;
  for (let k = 0; k < a.mc_nr_pages; k++) {
    if (!aligned(pa) || donate(pfnOf(pa), 1)) return fail(-EPERM);
    mc.push(pa);
    if (k + 1 < a.mc_nr_pages) pa = input.link(pa); // read only once hyp owns the page
  }
  if (!aligned(a.used) || donate(pfnOf(a.used), a.num_used_pages)) return fail(-EPERM);

  // 2. The size checks.
  if (a.used_pages_indx !== 0) return fail(-EINVAL);
  if (a.pgd_pages < HOST_PGD_PAGES) return fail(-ENOMEM);
  const needed = input.tablePages(units.flat());
  if (a.mc_nr_pages < needed) return fail(-ENOMEM);

  // 3. The copy pops one memcache page per table page, recorded while the array has room.
  //    Each pop reads the popped page's link (before the copy overwrites the page).
  const consumed = mc.slice(0, needed);
  const head = needed === 0 ? (a.mc.length > 0 ? a.mc[0] : 0) : input.link(consumed[needed - 1]);
  return { result: a.pgd, units, consumed, recorded: Math.min(needed, usedArrayEntries(a.num_used_pages)), leftover: { head, nr_pages: a.mc_nr_pages - needed } };
}
