// The host side of the snapshot, acting as the host kernel: before the hypercall it writes the
// descriptor and links the memcache pages through their first 8 bytes. Each write is a host access
// first (model and hyp alike): a page the host does not own faults, the abort is logged, and the
// call is not issued (its result is the fault's errno).
import type { SnapshotArgs } from '../../types/calls';
import { PA_PFNS } from '../../types/config';
import { host_access } from '../../model/access';
import { isMemory } from '../../model/range';
import { snapshotHostPages } from '../../model/snapshot';
import type { Pkvm } from '../../hyp/pkvm';
import * as pt from '../../hyp/pgtable';
import * as snap from '../../hyp/snapshot';
import type { Failure } from '../suite-types';
import type { Lockstep } from '../lockstep';
import { formatResult } from '../vocabulary';
import { P } from '../properties';

export interface Prepared {
  /** 0 when the host wrote everything; else the errno of the first faulting write. */
  readonly result: number;
  readonly modelResult: number;
  readonly failure: Failure | null;
}

/** The descriptor fields as the host writes them (byte offset, value). */
function descriptorFields(a: SnapshotArgs): [number, number][] {
  return [
    [snap.SNAP_PGD, a.pgd],
    [snap.SNAP_PGD_PAGES, a.pgd_pages],
    [snap.SNAP_MC_HEAD, a.mc.length > 0 ? a.mc[0] : 0],
    [snap.SNAP_MC_NR_PAGES, a.mc_nr_pages],
    [snap.SNAP_USED, a.used],
    [snap.SNAP_NUM_USED_PAGES, a.num_used_pages],
    [snap.SNAP_USED_PAGES_INDX, a.used_pages_indx],
  ];
}

/** Host writes of the descriptor and the memcache links, each behind a host access. */
export function hostPrepare(ls: Lockstep, a: SnapshotArgs, step: number): Prepared {
  const pages = snapshotHostPages(a);
  for (let i = 0; i < pages.length; i++) {
    const pfn = pages[i];
    const want = host_access(ls.model, { pfn, write: true });
    const got = ls.hyp.host_access(pfn, true);
    if (want !== got)
      return { result: got, modelResult: want, failure: { property: P.resultsAgree, step, message: `host write to pfn 0x${pfn.toString(16)} before the snapshot: model ${formatResult(want)}, hyp ${formatResult(got)}` } };
    if (got < 0) return { result: got, modelResult: want, failure: null };
    if (pfn >= PA_PFNS || !isMemory(ls.config, pfn)) continue; // a device write: no memory changes
    if (i === 0) for (const [off, v] of descriptorFields(a)) ls.hyp.mem.write64('host', pfn, off, BigInt(v));
    else ls.hyp.mem.write64('host', pfn, 0, BigInt(i < a.mc.length ? a.mc[i] : a.mc_tail));
  }
  return { result: 0, modelResult: 0, failure: null };
}

/** The memcache link of a page, as the host left it (read before hyp runs). */
export const hostLink = (hyp: Pkvm, pa: number): number => Number(hyp.mem.read64(Math.floor(pa / 4096), 0));

/**
 * Table pages below the PGD that the host stage-2 has once `pfns` carry page-granular annotations:
 * the tables it has now, plus the level-2 and level-3 tables on each page's path (an annotation is a
 * level-3 entry; a block or zero entry above is replaced by tables). Read from the raw descriptors.
 */
export function tablePagesAfter(hyp: Pkvm, pfns: readonly number[]): number {
  const ids = new Set<string>();
  const host = hyp.host_mmu;
  const visit = (table: number, level: number, base: number, entries: number) => {
    const span = pt.kvm_granule_pages(level);
    for (let i = 0; i < entries; i++) {
      const t = table + Math.floor(i / pt.PTRS_PER_PTE);
      const lo = hyp.mem.read32(t, 2 * (i % pt.PTRS_PER_PTE));
      const hi = hyp.mem.read32(t, 2 * (i % pt.PTRS_PER_PTE) + 1);
      if (!pt.kvm_pte_table(lo, level)) continue;
      const addr = base + i * span;
      ids.add(`${level + 1}:${addr}`);
      visit(pt.kvm_pte_to_pfn(lo, hi), level + 1, addr, pt.PTRS_PER_PTE);
    }
  };
  visit(host.pgd, host.start_level, 0, pt.PTRS_PER_PTE * host.pgd_pages);
  for (const p of pfns)
    for (let level = host.start_level; level < pt.KVM_PGTABLE_LAST_LEVEL; level++) {
      const span = pt.kvm_granule_pages(level);
      ids.add(`${level + 1}:${p - (p % span)}`);
    }
  return ids.size;
}
