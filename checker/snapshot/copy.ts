// The snapshot's output, judged after a successful call: the copy, walked from the returned PGD,
// maps exactly what the host stage-2 mapped when hyp copied it (ptdump and raw leaves, annotations
// included), uses exactly the consumed memcache pages as its tables (none shared with the host's),
// and the used-pages array lists the consumed pages in order.
import { hex } from '../vocabulary';
import type { SnapshotArgs } from '../../types/calls';
import type { SnapshotEffect } from '../../model/snapshot';
import type { Pkvm } from '../../hyp/pkvm';
import * as pt from '../../hyp/pgtable';
import { KvmPgtable } from '../../hyp/pgtable';
import { ptdumpOf } from '../../hyp/ptdump';
import type { Failure } from '../suite-types';
import { P, type PropertyName } from '../properties';


/** Every non-table entry of a table as "addr level lo hi". */
export function leafList(pgt: KvmPgtable): string[] {
  const out: string[] = [];
  pgt.walk(0, pgt.ia_pages, { leaf: (e) => out.push(`${hex(e.addr)} L${e.level} ${hex(e.lo)} ${hex(e.hi)}`) });
  return out;
}

/** A read-only view of the copy: a KvmPgtable over the returned PGD, shaped like the host stage-2. */
export function snapshotPgtable(hyp: Pkvm, pgdPa: number): KvmPgtable {
  const noAlloc = {
    zalloc_page: (): number => {
      throw new Error('the snapshot copy is read-only');
    },
    put_page: (): void => undefined,
  };
  const host = hyp.host_mmu;
  return new KvmPgtable({ mem: hyp.mem, vmemmap: hyp.vmemmap, mm_ops: noAlloc, start_level: host.start_level, pgd: Math.floor(pgdPa / 4096), pgd_pages: host.pgd_pages, ia_pages: host.ia_pages });
}

const firstDiff = (a: readonly string[], b: readonly string[]): number => {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return -1;
};

export function checkCopy(hyp: Pkvm, a: SnapshotArgs, eff: SnapshotEffect, hostDump: readonly string[], hostLeaves: readonly string[], step: number): Failure | null {
  const copy = snapshotPgtable(hyp, eff.result);
  const fail = (property: PropertyName, message: string): Failure => ({ property, step, message });
  const dump = ptdumpOf(hyp).ptdump(copy);
  const d = firstDiff(dump, hostDump);
  if (d >= 0) return fail(P.snapshotPtdumpEqualsHost, `ptdump line ${d + 1}: copy "${dump[d] ?? '(none)'}", host stage-2 "${hostDump[d] ?? '(none)'}"`);
  const leaves = leafList(copy);
  const l = firstDiff(leaves, hostLeaves);
  if (l >= 0) return fail(P.snapshotCopyEqualsHost, `leaf ${l + 1}: copy "${leaves[l] ?? '(none)'}", host stage-2 "${hostLeaves[l] ?? '(none)'}"`);
  const consumed = new Set(eff.consumed.map((pa) => Math.floor(pa / 4096)));
  const hostTables = new Set<number>();
  hyp.host_mmu.walk(0, hyp.host_mmu.ia_pages, { tablePre: (e) => hostTables.add(pt.kvm_pte_to_pfn(e.lo, e.hi)) });
  const seen = new Set<number>();
  let bad: string | null = null;
  copy.walk(0, copy.ia_pages, {
    tablePre: (e) => {
      const t = pt.kvm_pte_to_pfn(e.lo, e.hi);
      if (bad) return;
      if (seen.has(t)) bad = `table page ${hex(t)} is used twice by the copy`;
      else if (hostTables.has(t)) bad = `table page ${hex(t)} of the copy is a table page of the host stage-2 (shared, not copied)`;
      else if (!consumed.has(t)) bad = `table page ${hex(t)} of the copy is not one of the consumed memcache pages`;
      seen.add(t);
    },
  });
  if (bad) return fail(P.snapshotCopyTablesAreMemcachePages, bad);
  if (seen.size !== consumed.size) return fail(P.snapshotCopyTablesAreMemcachePages, `the copy has ${seen.size} table pages, the model consumed ${consumed.size} memcache pages`);
  const usedPfn = Math.floor(a.used / 4096);
  for (let i = 0; i < eff.recorded; i++) {
    const byte = i * 8;
    const got = Number(hyp.mem.read64(usedPfn + Math.floor(byte / 4096), byte % 4096));
    if (got !== eff.consumed[i]) return fail(P.snapshotUsedPagesExact, `used-pages entry ${i}: ${hex(got)}, expected the consumed page ${hex(eff.consumed[i])}`);
  }
  return null;
}
