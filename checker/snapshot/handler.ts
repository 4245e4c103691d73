// The CallHandler of __pkvm_host_stage2_snapshot: the host prepares the descriptor (harness.ts),
// then model and hyp run the call. At every internal step of hyp's call (its snapshot_hook) the
// pages taken so far must be out of the host's reach; afterwards the result must agree, every page
// must be back with the host, the copy must equal the host stage-2, and memory may differ only where
// the call is allowed to write.
import type { Call, SnapshotArgs } from '../../types/calls';
import { isMemory } from '../../model/range';
import { page } from '../../model/state';
import { __pkvm_host_stage2_snapshot as modelSnapshot, HOST_PGD_PAGES, type SnapshotEffect } from '../../model/snapshot';
import { PAGE_SIZE, snapshotOf, SNAP_MC_HEAD, SNAP_MC_NR_PAGES, SNAP_USED_PAGES_INDX, type SnapshotStep } from '../../hyp/snapshot';
import { addressPfn, addressWord, isCellAddress, wordAddress, type JournalAddress } from '../../hyp/memory';
import { PoolExhausted } from '../../hyp/pool';
import { ptdumpOf } from '../../hyp/ptdump';
import { checkPtdump } from '../ptdump-oracle';
import type { CallHandler } from '../handlers';
import type { Lockstep } from '../lockstep';
import type { Failure } from '../suite-types';
import { checkFaultLog, checkPage } from '../invariants';
import { formatResult, hex } from '../vocabulary';
import { isValid, isZero, translate } from '../walk';
import { hostLink, hostPrepare, tablePagesAfter } from './harness';
import { checkCopy, leafList } from './copy';
import { SNAPSHOT_STATS } from './stats';
import { P } from '../properties';

/** Pages checked against the model after the call, at most. */
const PAGE_CHECK_CAP = 256;

/** A snapshot step as failure messages name it. */
export function describeSnapshotStep(s: SnapshotStep): string {
  switch (s.kind) {
    case 'donated':
      return `donated pfn ${hex(s.pfn)}+${s.nr}`;
    case 'copied-table':
      return `copied table ${hex(s.from)} -> ${hex(s.to)}`;
    default:
      return s.kind.replace('-', ' ');
  }
}

/** Watches hyp's internal steps: donated pages must be unreachable by the host at each of them. */
class HookWatch {
  donations = 0;
  failure: Failure | null = null;
  hostDump: string[] | null = null;
  hostLeaves: string[] | null = null;

  constructor(
    private readonly ls: Lockstep,
    private readonly eff: SnapshotEffect,
    private readonly step: number,
  ) {}

  hook(stage: SnapshotStep): void {
    if (this.failure) return;
    if (stage.kind === 'donated') {
      this.donations++;
      if (this.donations > this.eff.units.length) {
        this.failure = { property: P.snapshotTakesWhatTheModelTakes, step: this.step, message: `hyp made donation #${this.donations} (${describeSnapshotStep(stage)}); the model takes only ${this.eff.units.length}` };
        return;
      }
    }
    if (stage.kind === 'teardown-begin') {
      // hyp's ptdump of the host stage-2 as copied, checked against the checker's own walk of it.
      this.hostDump = ptdumpOf(this.ls.hyp).ptdump(this.ls.hyp.host_mmu);
      this.hostLeaves = leafList(this.ls.hyp.host_mmu);
      this.failure = checkPtdump(this.ls.hyp.mem, this.ls.hyp.host_mmu, this.hostDump, 'host stage-2', this.step);
      if (this.failure) return;
    }
    // Once everything went back, the taken pages are the host's again.
    if (stage.kind === 'rollback-end' || stage.kind === 'teardown-end') return;
    const hyp = this.ls.hyp;
    for (const pfn of this.eff.units.slice(0, this.donations).flat()) {
      const t = translate(hyp.mem, hyp.host_mmu, pfn);
      if (isValid(t) || isZero(t)) {
        this.failure = {
          property: P.noHostAccessToDonatedSnapshotPages,
          step: this.step,
          message: `at "${describeSnapshotStep(stage)}": pfn ${hex(pfn)}, taken by the snapshot, is reachable by the host (host stage-2 level ${t.level}: ${isZero(t) ? 'zero entry, the host fault maps it' : 'valid mapping'})`,
        };
        return;
      }
    }
  }
}

const pfnOf = (pa: number): number => Math.floor(pa / PAGE_SIZE);
/** The two words of a 64-bit descriptor field at byte offset `off`. */
const fieldWords = (off: number): number[] => [off / 4, off / 4 + 1];
/** The descriptor fields hyp writes back on success: mc.head, mc.nr_pages, used_pages_indx. */
const DESC_WRITEBACK_WORDS = new Set([SNAP_MC_HEAD, SNAP_MC_NR_PAGES, SNAP_USED_PAGES_INDX].flatMap(fieldWords));

/**
 * Memory locations the call may change: hyp's own tables and data; on success also the snapshot's
 * output (the copy's PGD and table pages, the fields written back into the descriptor, the
 * used-pages entries recorded).
 */
function allowedWriter(ls: Lockstep, a: SnapshotArgs, eff: SnapshotEffect, success: boolean): (addr: JournalAddress) => boolean {
  const inRange = (pfn: number, [first, nr]: readonly [number, number]) => pfn >= first && pfn < first + nr;
  const pools = [ls.hyp.layout.hostPool, ls.hyp.layout.hypPool];
  const out = new Set<number>();
  const desc = pfnOf(a.desc);
  const usedStart = wordAddress(pfnOf(a.used), 0);
  if (success) {
    for (let i = 0; i < HOST_PGD_PAGES; i++) out.add(pfnOf(a.pgd) + i);
    for (const pa of eff.consumed) out.add(pfnOf(pa));
  }
  return (addr) => {
    if (isCellAddress(addr)) return true; // hyp's journaled data (vmemmap, pools): judged by the state checks
    const pfn = addressPfn(addr);
    if (pools.some((r) => inRange(pfn, r)) || out.has(pfn)) return true;
    if (!success) return false;
    if (pfn === desc && DESC_WRITEBACK_WORDS.has(addressWord(addr))) return true;
    // The used-pages array: two words per entry recorded, across its pages.
    return addr >= usedStart && addr - usedStart < 2 * eff.recorded;
  };
}

/** Hyp owns the page now (a page of its own, such as a table-pool page, is not a violation). */
function hypOwnsNow(ls: Lockstep, pfn: number): boolean {
  return page(ls.model, pfn).owner === 'hyp';
}

function checkAfter(ls: Lockstep, a: SnapshotArgs, eff: SnapshotEffect, watch: HookWatch, mark: number, step: number): Failure | null {
  const success = eff.result >= 0;
  const allowed = allowedWriter(ls, a, eff, success);
  const bad = ls.hyp.mem.diffSince(mark).filter(([addr]) => !allowed(addr));
  if (bad.length > 0) {
    const [addr, then, now] = bad[0];
    const pfn = isCellAddress(addr) ? -1 : addressPfn(addr);
    const took = eff.units.some((u) => u.includes(pfn));
    const whose = took ? 'a page the snapshot took' : 'a page the host kept throughout the call';
    // Every write after the mark is hyp's (the host wrote before it): one to a page hyp never took is
    // the headline violation, whatever the call's outcome.
    return {
      property: pfn >= 0 && !took && isMemory(ls.config, pfn) && !hypOwnsNow(ls, pfn) ? P.hypWritesOnlyOwnPages : success ? P.snapshotWritesOnlyItsOutput : P.failedCallChangesNothing,
      step,
      message: `snapshot ${success ? 'succeeded' : `failed with ${formatResult(eff.result)}`} but changed ${bad.length} location(s) it may not, first ${ls.hyp.mem.describe(addr)} (${whose}): 0x${(then >>> 0).toString(16)} -> 0x${(now >>> 0).toString(16)}`,
    };
  }
  const pages = new Set<number>(eff.units.flat());
  for (const pa of [a.desc, a.pgd, a.used, ...a.mc]) pages.add(pfnOf(pa));
  let n = 0;
  for (const pfn of pages) {
    if (n++ >= PAGE_CHECK_CAP) break;
    if (!isMemory(ls.config, pfn)) continue;
    const f = checkPage(ls.model, ls.hyp, pfn, step);
    if (f) return { ...f, message: `after the snapshot: ${f.message}` };
  }
  if (success) {
    if (!watch.hostDump || !watch.hostLeaves) return { property: P.snapshotCopyEqualsHost, step, message: 'hyp succeeded without reaching its teardown' };
    const f = checkCopy(ls.hyp, a, eff, watch.hostDump, watch.hostLeaves, step);
    if (f) return f;
    const indx = Number(ls.hyp.mem.read64(pfnOf(a.desc), SNAP_USED_PAGES_INDX));
    if (indx !== eff.recorded) return { property: P.snapshotUsedPagesExact, step, message: `the descriptor's used_pages_indx is ${indx}, expected ${eff.recorded}` };
    // The memcache hyp hands back (struct kvm_hyp_memcache: head and nr_pages) is what the copy left.
    const head = Number(ls.hyp.mem.read64(pfnOf(a.desc), SNAP_MC_HEAD));
    const nr = Number(ls.hyp.mem.read64(pfnOf(a.desc), SNAP_MC_NR_PAGES));
    if (head !== eff.leftover.head || nr !== eff.leftover.nr_pages)
      return { property: P.snapshotMemcacheWrittenBack, step, message: `the descriptor's memcache is head ${hex(head)}, ${nr} page(s); the model leaves head ${hex(eff.leftover.head)}, ${eff.leftover.nr_pages} page(s) (${eff.consumed.length} of ${a.mc_nr_pages} consumed)` };
  }
  return null; // the tables of every stage are checked at the end of the sequence (Lockstep.finish)
}

export const snapshotHandler: CallHandler = {
  run(ls: Lockstep, call: Call, step: number) {
    if (call.call !== '__pkvm_host_stage2_snapshot') throw new Error(`snapshotHandler: cannot run ${call.call}`);
    const a = call.args;
    const prep = hostPrepare(ls, a, step);
    if (prep.failure || prep.result < 0) return { result: prep.result, modelResult: prep.modelResult, failure: prep.failure ?? checkFaultLog(ls.model, ls.hyp, step) };
    const mark = ls.hyp.mem.mark();
    const eff = modelSnapshot(ls.model, a, { link: (pa) => hostLink(ls.hyp, pa), tablePages: (pfns) => tablePagesAfter(ls.hyp, pfns) });
    SNAPSHOT_STATS.record(a, eff);
    const s = snapshotOf(ls.hyp);
    const watch = new HookWatch(ls, eff, step);
    s.snapshot_hook = (stage) => watch.hook(stage);
    let got: number;
    try {
      got = s.__pkvm_host_stage2_snapshot(a.desc);
    } catch (e) {
      if (e instanceof PoolExhausted) return { result: eff.result, modelResult: eff.result, failure: { property: P.harnessLimit, step, message: e.message } };
      throw e;
    } finally {
      s.snapshot_hook = null;
    }
    if (got !== eff.result) return { result: got, modelResult: eff.result, failure: { property: P.resultsAgree, step, message: `__pkvm_host_stage2_snapshot: model returned ${formatResult(eff.result)}, hyp returned ${formatResult(got)}` } };
    return { result: got, modelResult: eff.result, failure: watch.failure ?? checkAfter(ls, a, eff, watch, mark, step) };
  },
};
