// Boot-time layout of hyp's reserved memory (the kernel's hyp carve-out): page-table pools for the
// host stage-2 and hyp's stage-1, a reserve for guest stage-2 tables, and the two PGDs. Pool sizes
// follow the kernel's idea (__hyp_pgtable_total_pages): enough tables to map every memory page at
// page granularity, plus a margin for MMIO.
import type { MachineConfig, MemoryRegion } from '../types/config';
import { PTRS_PER_TABLE } from '../types/config';

export interface HypLayout {
  /** All pages hyp reserved for itself: host `NOPAGE`, hyp `OWNED` from boot. */
  readonly carveout: MemoryRegion;
  readonly hostPgd: number; // 2 concatenated pages
  readonly hypPgd: number; // 1 page
  readonly hostPool: MemoryRegion;
  readonly hypPool: MemoryRegion;
  readonly guestReserve: MemoryRegion;
}

/** The host stage-2's PGD: two concatenated pages (40-bit IPA, level 1 start); hyp's stage-1 PGD is one. */
export const HOST_PGD_PAGES = 2;
export const HYP_PGD_PAGES = 1;

/** Pages for guest stage-2 tables when a VM's own pool is used up. */
export const GUEST_RESERVE_PAGES = 256;

function tablePages(config: MachineConfig): number {
  let n = 16; // MMIO next to the regions
  for (const [, nr] of config.memory) n += Math.ceil(nr / PTRS_PER_TABLE) + Math.ceil(nr / PTRS_PER_TABLE ** 2) + 4;
  return n;
}

export function hypLayout(config: MachineConfig): HypLayout {
  const pool = tablePages(config);
  const pgds = HOST_PGD_PAGES + HYP_PGD_PAGES;
  const total = pgds + 2 * pool + GUEST_RESERVE_PAGES;
  const [first, nr] = [...config.memory].sort((a, b) => b[1] - a[1])[0];
  if (nr < total * 2) throw new Error(`config: the largest memory region (${nr} pages) is too small for hyp's ${total}-page carve-out`);
  const start = first + nr - total;
  return {
    carveout: [start, total],
    hostPgd: start,
    hypPgd: start + HOST_PGD_PAGES,
    hostPool: [start + pgds, pool],
    hypPool: [start + pgds + pool, pool],
    guestReserve: [start + pgds + 2 * pool, GUEST_RESERVE_PAGES],
  };
}
