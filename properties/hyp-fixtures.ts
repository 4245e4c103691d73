// Fixtures shared by the directed tests of hyp/ (properties/hyp-*.test.ts): a stand-alone page table,
// a machine with two memory regions, and a recorder of the pages hyp writes.
import { PhysMem } from '../hyp/memory';
import { KvmPgtable, KVM_LEVEL_1G } from '../hyp/pgtable';
import type { Pkvm } from '../hyp/pkvm';
import { HypPool } from '../hyp/pool';
import { HypVmemmap } from '../hyp/vmemmap';
import { DEFAULT_CONFIG, PA_PFNS, type MachineConfig } from '../types/config';

/** Bytes per page: the tests' physical addresses are pfn * PAGE_BYTES. */
export const PAGE_BYTES = 4096;

export const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

/**
 * Two memory regions with a 2 MiB MMIO hole between them: find_mem_range's walk over the regions,
 * range checks that straddle a region's end, and idmap blocks that must stop at the hole.
 */
export const TWO_REGIONS: MachineConfig = { memory: [[0x40000, 0x200], [0x40400, 0x1000]], pageSize: 4096 };

/** Where standaloneTable puts its PGD (two pages) and its pool of table pages. */
export const STANDALONE = { pgd: 0x20, poolFirst: 0x100, poolPages: 0x200 } as const;

/**
 * A page table on memory of its own, shaped like the host stage-2 (level 1 start, two concatenated
 * PGD pages, the 40-bit input space), with its tables from a pool.
 */
export function standaloneTable() {
  const mem = new PhysMem();
  const vmemmap = new HypVmemmap(mem, { ...DEFAULT_CONFIG, memory: [[0, 0x1000]] });
  const pool = new HypPool(mem, 'tables', STANDALONE.poolFirst, STANDALONE.poolPages);
  const mm_ops = { zalloc_page: () => pool.alloc(), put_page: (p: number) => pool.free(p) };
  const pgt = new KvmPgtable({ mem, vmemmap, mm_ops, start_level: KVM_LEVEL_1G, pgd: STANDALONE.pgd, pgd_pages: 2, ia_pages: PA_PFNS });
  pgt.init();
  return { mem, vmemmap, pool, pgt };
}

/** Runs `f` and returns the pfns hyp wrote meanwhile, as the checker's hook sees them. */
export function hypWrites(hyp: Pkvm, f: () => void): Set<number> {
  const seen = new Set<number>();
  hyp.mem.onHypWrite = (pfn) => seen.add(pfn);
  f();
  hyp.mem.onHypWrite = null;
  return seen;
}
