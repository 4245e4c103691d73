// Range arguments (docs/semantics.md §4): which pages a call on [pfn, pfn + nr_pages) checks, and the
// errno a range gets as a whole, following the version's RangeRule (types/kernel.ts).
import { EPERM } from '../types/errno';
import { PA_PFNS, type MachineConfig } from '../types/config';
import { U64_PFNS, type RangeRule } from '../types/kernel';

/** A range as the kernel sees it: `pfn` and `nr` reduced modulo 2^52 (u64 byte addresses). */
export interface U64Range {
  readonly pfn: number;
  readonly nr: number;
  /** The end wraps past 2^64 (or lands exactly on it). */
  readonly wraps: boolean;
}

export function u64Range(pfn: number, nr: number): U64Range {
  const p = pfn % U64_PFNS;
  const n = nr % U64_PFNS;
  return { pfn: p, nr: n, wraps: n > 0 && p + n >= U64_PFNS };
}

/** How many pages of the range the checks and the effect visit under `rule` (0 for 'nothing'). */
export const pagesVisited = (rule: RangeRule, r: U64Range): number => (rule.emptyOrWrapping === 'nothing' && (r.nr === 0 || r.wraps) ? 0 : r.nr);

/** The memory region or MMIO gap holding pfn `p`: [start, end) in pages; the last gap ends at 2^52. */
function spanOf(config: MachineConfig, p: number): { start: number; end: number; memory: boolean } {
  let start = 0;
  for (const [first, size] of config.memory) {
    if (p < first) return { start, end: first, memory: false };
    if (p < first + size) return { start: first, end: first + size, memory: true };
    start = first + size;
  }
  return { start, end: U64_PFNS, memory: false };
}

/** 0 when the range passes as a whole (its pages are checked next), else the rule's errno. */
export function checkRange(config: MachineConfig, rule: RangeRule, r: U64Range): number {
  const end = (r.pfn + r.nr) % U64_PFNS;
  if (rule.beyondPa !== null && (r.pfn > PA_PFNS || end > PA_PFNS)) return rule.beyondPa;
  if (rule.mixed === 'each-page' || (rule.emptyOrWrapping === 'nothing' && pagesVisited(rule, r) === 0)) return 0;
  // The last byte, end - 1: when end is 0 it is 2^64 - 1, which no span holds (the last gap stops
  // one byte short of it); otherwise it lies in page end - 1.
  const span = spanOf(config, r.pfn);
  if (end === 0 || end - 1 < span.start || end - 1 >= span.end) return rule.mixed;
  return span.memory ? 0 : -EPERM;
}

export function isMemory(config: MachineConfig, pfn: number): boolean {
  for (const [first, size] of config.memory) if (pfn >= first && pfn < first + size) return true;
  return false;
}
