// The simulated target: hyp/ in simulated memory, checked from the inside. Besides results and
// page states it sees every write (hyp writes only pages hyp owns, checked at the moment of the
// write) and every changed word (a failed call changes nothing, bit for bit).
import type { Call, CallName } from '../../types/calls';
import type { MachineConfig } from '../../types/config';
import type { State } from '../../model/state';
import { Pkvm } from '../../hyp/pkvm';
import { handle_host_hcall } from '../../hyp/hyp-main';
import { PoolExhausted } from '../../hyp/pool';
import type { HypBug } from '../bugs/ownership';
import { BootMemo } from '../boot-memo';
import { checkAll, checkFaultLog, checkFaultLogTail, checkLoadedVcpu, checkPage, checkVm } from '../invariants';
import type { Failure } from '../suite-types';
import { TargetFailure, type Footprint, type Target } from '../target';
import { formatResult, hex } from '../vocabulary';
import { abstractPage, pageKey } from '../abstraction';
import { ptdump } from '../../hyp/ptdump';
import { PTRS_PER_TABLE } from '../../types/config';
import { annotationOwner, isValid, isZero, translate } from '../walk';
import { KVM_PGTABLE_PROT_SW1 } from '../../hyp/pgtable';
import { P } from '../properties';

export class SimTarget implements Target {
  readonly name = 'sim';
  readonly hyp: Pkvm;
  readonly reserved;
  /** What the end-of-sequence check reuses from boot. */
  private readonly bootMemo: BootMemo;
  private writeViolation: string | null = null;
  private readViolation: string | null = null;
  /** A page hyp took as a page-table page while it still held data (seen at the moment it took it). */
  private tableViolation: string | null = null;
  /** The page the last hyp write went to, already checked (forgotten when memory is rolled back). */
  private lastChecked = -1;
  /** hyp's memory before the current call, to diff a failed call against. */
  private mark = 0;

  constructor(config: MachineConfig, bugs: readonly HypBug[] = []) {
    this.hyp = new Pkvm(config);
    for (const b of bugs) b.inject(this.hyp);
    this.hyp.mem.commit(); // boot is the base every sequence returns to
    this.reserved = [this.hyp.layout.carveout];
    this.bootMemo = new BootMemo(this.hyp);
    // "Hyp writes only pages hyp owns", checked at the moment of every write. Between two writes to
    // the same page nothing else was written, so no ownership changed: one check covers the run.
    this.hyp.mem.onHypWrite = (pfn) => {
      if (pfn === this.lastChecked || this.writeViolation !== null) return;
      this.lastChecked = pfn;
      const whose = this.notHyps(pfn);
      if (whose !== null) this.writeViolation = `hyp wrote pfn 0x${pfn.toString(16)}, which it does not own (host stage-2: ${whose})`;
    };
    // "hyp reads host-provided data only from pages it owns": otherwise the host could change a
    // descriptor field or a memcache link between hyp's check and its use.
    this.hyp.mem.onHypRead = (pfn) => {
      if (this.readViolation !== null) return;
      const whose = this.notHyps(pfn);
      if (whose !== null) this.readViolation = `hyp read host-provided data from pfn 0x${pfn.toString(16)}, which it does not own (host stage-2: ${whose})`;
    };
    // "Every page hyp takes as a page-table page is zero when it takes it": a table page's refcount
    // is 1 + its entries, so it goes from 0 to 1 exactly when a table (a PGD, or a page from a pool)
    // comes into use; the only other 0 -> 1 are a pin, on a page hyp borrows, and a vCPU load, on its
    // VM's metadata page. Stale words there would
    // be read as descriptors (the host's data as guest mappings, say).
    const vmemmap = this.hyp.vmemmap;
    const page_ref_add = vmemmap.page_ref_add;
    vmemmap.page_ref_add = (pfn, d) => {
      if (d > 0 && this.tableViolation === null && vmemmap.refcount(pfn) === 0) this.tableViolation = this.staleTableWords(pfn);
      page_ref_add(pfn, d);
    };
  }

  /** Why page `pfn`, about to become a table page, may not (null when it is zero or a pinned page). */
  private staleTableWords(pfn: number): string | null {
    const words = this.hyp.mem.pageView(pfn);
    let w = 0;
    while (w < words.length && words[w] === 0) w++;
    if (w === words.length) return null;
    const t = translate(this.hyp.mem, this.hyp.hyp_pgt, pfn);
    if (isValid(t) && (t.hi & KVM_PGTABLE_PROT_SW1) !== 0) return null; // a pin on a borrowed page
    if (this.hyp.vms().some((vm) => vm.first === pfn)) return null; // a loaded vCPU's reference on its VM
    return `hyp took pfn ${hex(pfn)} as a page-table page, but it is not zero: word ${w} (byte 0x${(w * 4).toString(16)}) is 0x${(words[w] >>> 0).toString(16)}`;
  }

  supports(_call: CallName): boolean {
    return true;
  }

  /** Why the host stage-2 says hyp does not own `pfn` (null when hyp owns it). */
  private notHyps(pfn: number): string | null {
    const t = translate(this.hyp.mem, this.hyp.host_mmu, pfn);
    if (!isValid(t) && !isZero(t) && annotationOwner(t) === 1) return null;
    return isZero(t) ? 'host, unmapped' : isValid(t) ? 'mapped for the host' : `owner id ${annotationOwner(t)}`;
  }

  reset(): void {
    this.hyp.mem.undo(0);
    this.writeViolation = null;
    this.readViolation = null;
    this.tableViolation = null;
    this.lastChecked = -1;
  }

  execute(call: Call, _want: number, _touched: Footprint, step: number, _model: State): number {
    this.mark = this.hyp.mem.mark();
    try {
      return handle_host_hcall(this.hyp, call);
    } catch (e) {
      if (e instanceof PoolExhausted) throw new TargetFailure({ property: P.harnessLimit, step, message: e.message });
      throw e;
    }
  }

  check(model: State, call: Call, result: number, touched: Footprint, n: number): Failure | null {
    if (result < 0 && this.hyp.mem.mark() !== this.mark) {
      const changed = this.hyp.mem.diffSince(this.mark).filter(([addr]) => !(call.call === 'host_access' && this.hyp.faults.ownsCell(addr)));
      if (changed.length > 0) {
        const [addr, then, now] = changed[0];
        return { property: P.failedCallChangesNothing, step: n, message: `${call.call} failed with ${formatResult(result)} but changed ${changed.length} location(s), first ${this.hyp.mem.describe(addr)}: 0x${(then >>> 0).toString(16)} -> 0x${(now >>> 0).toString(16)}` };
      }
    }
    for (const pfn of touched.pages) {
      const f = checkPage(model, this.hyp, pfn, n);
      if (f) return f;
    }
    for (const h of touched.vms) {
      const f = checkVm(model, this.hyp, h, n, touched.gfns);
      if (f) return f;
    }
    const loaded = checkLoadedVcpu(model, this.hyp, n);
    if (loaded) return loaded;
    if (call.call === 'host_access') return checkFaultLogTail(model, this.hyp, n);
    return call.call === '__pkvm_init_vm' ? checkFaultLog(model, this.hyp, n) : null;
  }

  /** A forbidden write or read seen during the step, whatever ran it. */
  pending(n: number): Failure | null {
    if (this.writeViolation) return { property: P.hypWritesOnlyOwnPages, step: n, message: this.writeViolation };
    if (this.readViolation) return { property: P.hypReadsHostDataOnlyFromOwnPages, step: n, message: this.readViolation };
    return this.tableViolation ? { property: P.tablePagesZeroed, step: n, message: this.tableViolation } : null;
  }

  close(): void {}

  notes(): string[] {
    return [];
  }

  report(): string[] {
    return [];
  }

  /** hyp's abstraction of the page, and a ptdump of the host stage-2 over its 2 MiB block. */
  explain(pfn: number): { readonly found: string; readonly detail: string[] } {
    const b = pfn - (pfn % PTRS_PER_TABLE);
    return {
      found: pageKey(abstractPage(this.hyp, pfn)),
      detail: [`host stage-2, ${hex(b * 4096)}-${hex((b + PTRS_PER_TABLE) * 4096)}:`, ...ptdump(this.hyp.host_mmu, b, PTRS_PER_TABLE).map((l) => `  ${l}`)],
    };
  }

  finish(model: State, steps: number): Failure | null {
    return checkAll(model, this.hyp, steps, this.bootMemo.hints(this.hyp.mem.writtenPages(0)));
  }
}
