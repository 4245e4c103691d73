// __pkvm_host_stage2_snapshot (the "arm64: ptdump: View the second stage page-tables" series, kept
// in Android trees): the host asks hyp for a copy of its own stage-2 tables. The host prepares a
// descriptor page (struct kvm_pgtable_snapshot), PGD pages for the copy, a memcache of free pages
// linked through their first 8 bytes, and a used-pages array; hyp takes all of them (host -> hyp
// donation), copies the host stage-2 into them under the host lock, and gives everything back.
//
// Descriptor layout (byte offsets in the descriptor page; offset 0 is left free):
//   8 pgd (PA)   16 pgd_pages   24 mc.head (PA)   32 mc.nr_pages   40 used (PA)
//   48 num_used_pages (the array's size in pages; 8-byte entries)   56 used_pages_indx
// As in the kernel, any setup failure (misaligned address, a page the host may not give) is -EPERM;
// then a non-zero used_pages_indx is -EINVAL, a PGD shorter than the host's or a memcache shorter
// than its table count -ENOMEM.
import { EINVAL, ENOMEM, EPERM } from '../types/errno';
import type { Hyp } from './mem_protect';
import * as pt from './pgtable';
import { PAGE_WORDS } from './memory';

export const PAGE_SIZE = 4096;
export const SNAP_PGD = 8;
export const SNAP_PGD_PAGES = 16;
export const SNAP_MC_HEAD = 24;
export const SNAP_MC_NR_PAGES = 32;
export const SNAP_USED = 40;
export const SNAP_NUM_USED_PAGES = 48;
export const SNAP_USED_PAGES_INDX = 56;

/** struct kvm_pgtable_snapshot, as hyp reads it from the descriptor page. */
export interface KvmPgtableSnapshot {
  readonly desc: number; // pfn of the descriptor page
  readonly pgd: number; // PA
  readonly pgd_pages: number;
  mc_head: number; // PA
  mc_nr_pages: number;
  readonly used: number; // PA
  readonly num_used_pages: number;
  used_pages_indx: number;
}

/** What the setup took so far, so that an error returns exactly that. */
export interface SnapshotSetup {
  desc: number; // pfn, -1 when not taken
  pgd: readonly [number, number] | null; // [pfn, nr]
  /** Memcache pages taken (pfns), in list order. */
  readonly mc: number[];
  /** The memcache PA whose donation failed, if any (it was not taken). */
  mc_failed: number | null;
  used: readonly [number, number] | null;
}

/**
 * The snapshot's internal steps, as its hook reports them: after each donation to hyp, after each
 * table copied, and at the start and end of the error path (rollback) and of the teardown.
 */
export type SnapshotStep =
  | { readonly kind: 'donated'; readonly pfn: number; readonly nr: number }
  | { readonly kind: 'copied-table'; readonly from: number; readonly to: number }
  | { readonly kind: 'rollback-begin' | 'rollback-end' | 'teardown-begin' | 'teardown-end' };

const PAGE_ALIGNED = (pa: number) => pa % PAGE_SIZE === 0;
const pfnOf = (pa: number) => Math.floor(pa / PAGE_SIZE);

export class PkvmHostStage2Snapshot {
  /** Observation point: called at each internal step (the checker installs it for one call). */
  snapshot_hook: ((step: SnapshotStep) => void) | null = null;

  constructor(readonly hyp: Hyp) {}

  private hook(step: SnapshotStep): void {
    this.snapshot_hook?.(step);
  }

  /**
   * Reads a 64-bit field the host wrote (as a number: every field the host writes is below 2^53):
   * a descriptor field or a memcache link, only ever from a page hyp already took.
   */
  read_field(pfn: number, off: number): number {
    return Number(this.hyp.mem.hypRead64(pfn, off));
  }

  /** host -> hyp of [pfn, pfn + nr) through the ordinary donation (page-state checks included). */
  snapshot_donate(pfn: number, nr: number): number {
    if (nr === 0) return 0;
    const ret = this.hyp.__pkvm_host_donate_hyp(pfn, nr);
    if (ret === 0) this.hook({ kind: 'donated', pfn, nr });
    return ret;
  }

  /** hyp -> host of pages this call took. */
  snapshot_return(pfn: number, nr: number): void {
    if (nr > 0) this.hyp.__pkvm_hyp_donate_host(pfn, nr);
  }

  snapshot_read_desc(desc: number): KvmPgtableSnapshot {
    const f = (off: number) => this.read_field(desc, off);
    return {
      desc,
      pgd: f(SNAP_PGD),
      pgd_pages: f(SNAP_PGD_PAGES),
      mc_head: f(SNAP_MC_HEAD),
      mc_nr_pages: f(SNAP_MC_NR_PAGES),
      used: f(SNAP_USED),
      num_used_pages: f(SNAP_NUM_USED_PAGES),
      used_pages_indx: f(SNAP_USED_PAGES_INDX),
    };
  }

  /** Takes the memcache pages one by one, reading a page's next pointer only once hyp owns it. */
  snapshot_donate_memcache(snap: KvmPgtableSnapshot, setup: SnapshotSetup): number {
    let pa = snap.mc_head;
    for (let k = 0; k < snap.mc_nr_pages; k++) {
      const ret = PAGE_ALIGNED(pa) ? this.snapshot_donate(pfnOf(pa), 1) : -EPERM;
      if (ret) {
        setup.mc_failed = pa;
        return ret;
      }
      setup.mc.push(pfnOf(pa));
      if (k + 1 < snap.mc_nr_pages) pa = this.read_field(pfnOf(pa), 0);
    }
    return 0;
  }

  /** Everything after the descriptor: the PGD pages, the memcache, the used-pages array. */
  snapshot_donate_setup(snap: KvmPgtableSnapshot, setup: SnapshotSetup): number {
    if (!PAGE_ALIGNED(snap.pgd)) return -EPERM;
    let ret = this.snapshot_donate(pfnOf(snap.pgd), snap.pgd_pages);
    if (ret) return ret;
    setup.pgd = [pfnOf(snap.pgd), snap.pgd_pages];
    ret = this.snapshot_donate_memcache(snap, setup);
    if (ret) return ret;
    if (!PAGE_ALIGNED(snap.used)) return -EPERM;
    ret = this.snapshot_donate(pfnOf(snap.used), snap.num_used_pages);
    if (ret) return ret;
    setup.used = [pfnOf(snap.used), snap.num_used_pages];
    return 0;
  }

  /** Table pages below the PGD in the host stage-2: the memcache pages the copy will need. */
  host_stage2_count_tables(): number {
    let n = 0;
    this.hyp.host_mmu.walk(0, this.hyp.host_mmu.ia_pages, { tablePre: () => n++ });
    return n;
  }

  snapshot_check(snap: KvmPgtableSnapshot): number {
    if (snap.used_pages_indx !== 0) return -EINVAL;
    if (snap.pgd_pages < this.hyp.host_mmu.pgd_pages) return -ENOMEM; // too short for the host's PGD
    if (snap.mc_nr_pages < this.host_stage2_count_tables()) return -ENOMEM;
    return 0;
  }

  /** The memcache pages go back last taken first; the failed page was never taken. */
  snapshot_return_memcache(setup: SnapshotSetup): void {
    for (let i = setup.mc.length - 1; i >= 0; i--) this.snapshot_return(setup.mc[i], 1);
  }

  /** Error path of the setup: returns exactly what was taken, and nothing else. */
  snapshot_rollback(setup: SnapshotSetup): void {
    this.hook({ kind: 'rollback-begin' });
    if (setup.used) this.snapshot_return(setup.used[0], setup.used[1]);
    this.snapshot_return_memcache(setup);
    if (setup.pgd) this.snapshot_return(setup.pgd[0], setup.pgd[1]);
    if (setup.desc >= 0) this.snapshot_return(setup.desc, 1);
    this.hook({ kind: 'rollback-end' });
  }

  /** pop_hyp_memcache: the head page, following the pointer stored in it. */
  pop_hyp_memcache(snap: KvmPgtableSnapshot): number {
    const pa = snap.mc_head;
    snap.mc_head = this.read_field(pfnOf(pa), 0);
    snap.mc_nr_pages--;
    return pa;
  }

  /** Appends a consumed page to the used-pages array while it has room. */
  snapshot_record_used(snap: KvmPgtableSnapshot, pa: number): void {
    if (snap.used_pages_indx * 8 >= snap.num_used_pages * PAGE_SIZE) return;
    const byte = snap.used_pages_indx * 8;
    this.hyp.mem.write64('hyp', pfnOf(snap.used) + Math.floor(byte / PAGE_SIZE), byte % PAGE_SIZE, BigInt(pa));
    snap.used_pages_indx++;
  }

  /** Copies a page word by word (writing only words that differ). */
  copy_page(from: number, to: number): void {
    const mem = this.hyp.mem;
    for (let w = 0; w < PAGE_WORDS; w++) {
      const v = mem.read32(from, w);
      if (mem.read32(to, w) !== v) mem.write32('hyp', to, w, v);
    }
  }

  /** A table page of the copy for the host table `src`: a page popped from the memcache. */
  snapshot_alloc_table(snap: KvmPgtableSnapshot, src: number): number {
    const pa = this.pop_hyp_memcache(snap);
    this.snapshot_record_used(snap, pa);
    this.copy_page(src, pfnOf(pa));
    return pfnOf(pa);
  }

  /**
   * Below `dst`, the copy of host table `src` (at `level`): copies every table `src` points at into a
   * memcache page, re-points `dst`'s entry at the copy, and recurses.
   */
  snapshot_copy_table(snap: KvmPgtableSnapshot, src: number, dst: number, level: number): void {
    const mem = this.hyp.mem;
    for (let i = 0; i < pt.PTRS_PER_PTE; i++) {
      const lo = mem.read32(src, 2 * i);
      const hi = mem.read32(src, 2 * i + 1);
      if (!pt.kvm_pte_table(lo, level)) continue; // leaves, annotations and zero entries are kept
      const child = pt.kvm_pte_to_pfn(lo, hi);
      const copy = this.snapshot_alloc_table(snap, child);
      const table = pt.kvm_init_table_pte(copy); // the copied entry points at the copied table
      mem.write32('hyp', dst, 2 * i, table.lo);
      mem.write32('hyp', dst, 2 * i + 1, table.hi);
      this.hook({ kind: 'copied-table', from: child, to: copy });
      this.snapshot_copy_table(snap, child, copy, level + 1);
    }
  }

  /** Under the host lock: the PGD, then every table below it; returns the copy's PGD (PA). */
  host_stage2_snapshot(snap: KvmPgtableSnapshot): number {
    const host = this.hyp.host_mmu;
    for (let i = 0; i < host.pgd_pages; i++) {
      this.copy_page(host.pgd + i, pfnOf(snap.pgd) + i);
      this.snapshot_copy_table(snap, host.pgd + i, pfnOf(snap.pgd) + i, host.start_level);
    }
    return snap.pgd;
  }

  /** Writes the memcache and the used-pages index back into the descriptor. */
  snapshot_write_desc(snap: KvmPgtableSnapshot): void {
    const mem = this.hyp.mem;
    mem.write64('hyp', snap.desc, SNAP_MC_HEAD, BigInt(snap.mc_head));
    mem.write64('hyp', snap.desc, SNAP_MC_NR_PAGES, BigInt(snap.mc_nr_pages));
    mem.write64('hyp', snap.desc, SNAP_USED_PAGES_INDX, BigInt(snap.used_pages_indx));
  }

  /** Everything back to the host: the used-pages array, the memcache (used or not), the PGD, the descriptor. */
  snapshot_teardown(setup: SnapshotSetup): void {
    this.hook({ kind: 'teardown-begin' });
    if (setup.used) this.snapshot_return(setup.used[0], setup.used[1]);
    for (let i = setup.mc.length - 1; i >= 0; i--) this.snapshot_return(setup.mc[i], 1);
    if (setup.pgd) this.snapshot_return(setup.pgd[0], setup.pgd[1]);
    this.snapshot_return(setup.desc, 1);
    this.hook({ kind: 'teardown-end' });
  }

  __pkvm_host_stage2_snapshot(desc_pa: number): number {
    if (!PAGE_ALIGNED(desc_pa)) return -EPERM;
    const setup: SnapshotSetup = { desc: -1, pgd: null, mc: [], mc_failed: null, used: null };
    let ret = this.snapshot_donate(pfnOf(desc_pa), 1);
    if (ret) return -EPERM;
    setup.desc = pfnOf(desc_pa);
    const snap = this.snapshot_read_desc(setup.desc);
    ret = this.snapshot_donate_setup(snap, setup) ? -EPERM : this.snapshot_check(snap);
    if (ret) {
      this.snapshot_rollback(setup);
      return ret;
    }
    const pgd = this.host_stage2_snapshot(snap);
    this.snapshot_write_desc(snap);
    this.snapshot_teardown(setup);
    return pgd;
  }
}

const instances = new WeakMap<Hyp, PkvmHostStage2Snapshot>();

/** The snapshot state of a hyp instance (one per instance, so that a bug can replace its methods). */
export function snapshotOf(hyp: Hyp): PkvmHostStage2Snapshot {
  let s = instances.get(hyp);
  if (!s) {
    s = new PkvmHostStage2Snapshot(hyp);
    instances.set(hyp, s);
  }
  return s;
}
