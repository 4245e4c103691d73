// hyp_vmemmap: hyp's per-page metadata for every memory page, kept in journaled cells. The host's
// page state itself lives in the host stage-2's software bits (the pre-v6.14 encoding), so only
// the counters and flags are here.
import type { MachineConfig } from '../types/config';
import type { PhysMem } from './memory';

const FIELDS = 3;
const REFCOUNT = 0;
const SHARE_GUEST_COUNT = 1;
const FLAGS = 2;

/** The page is lent to the secure world (the model's stricter unshare_ffa check needs this). */
export const HYP_PAGE_FFA_SHARED = 1;
/** Hyp uses the page itself (its reserve, a VM's pages): __pkvm_hyp_donate_host refuses it. */
export const HYP_PAGE_INTERNAL = 2;

export class HypVmemmap {
  private readonly base: number;
  private readonly regions: readonly (readonly [number, number, number])[];

  constructor(
    private readonly mem: PhysMem,
    config: MachineConfig,
  ) {
    let offset = 0;
    this.regions = config.memory.map(([first, nr]) => {
      const r = [first, nr, offset] as const;
      offset += nr;
      return r;
    });
    this.base = mem.allocCells(offset * FIELDS);
  }

  /** hyp_phys_to_page: the metadata slot of a memory pfn (-1 for MMIO). */
  private slot(pfn: number): number {
    for (const [first, nr, offset] of this.regions) if (pfn >= first && pfn < first + nr) return this.base + (offset + pfn - first) * FIELDS;
    return -1;
  }

  private get(pfn: number, field: number): number {
    const s = this.slot(pfn);
    return s < 0 ? 0 : this.mem.cell(s + field);
  }

  private add(pfn: number, field: number, delta: number): void {
    const s = this.slot(pfn);
    if (s < 0) throw new Error(`hyp_vmemmap: pfn 0x${pfn.toString(16)} is not memory`);
    this.mem.setCell(s + field, this.mem.cell(s + field) + delta);
  }

  refcount = (pfn: number): number => this.get(pfn, REFCOUNT);
  page_ref_add = (pfn: number, d: number): void => this.add(pfn, REFCOUNT, d);
  share_guest_count = (pfn: number): number => this.get(pfn, SHARE_GUEST_COUNT);
  share_guest_count_add = (pfn: number, d: number): void => this.add(pfn, SHARE_GUEST_COUNT, d);
  flags = (pfn: number): number => this.get(pfn, FLAGS);
  set_flags(pfn: number, set: number, clear: number): void {
    const f = this.flags(pfn);
    this.add(pfn, FLAGS, ((f & ~clear) | set) - f);
  }
}
