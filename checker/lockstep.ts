// The lockstep runner: executes each call on the model and on hyp, compares the results, and checks
// the invariants on the pages the call touched; `finish` checks everything at the end of a sequence.
import type { Call } from '../types/calls';
import { ERRNO_NAMES } from '../types/errno';
import type { MachineConfig } from '../types/config';
import { cloneState, execModel, initialState, type State } from '../model';
import { Pkvm } from '../hyp/pkvm';
import { handle_host_hcall } from '../hyp/hyp-main';
import { PoolExhausted } from '../hyp/pool';
import type { Coverage, Failure } from './suite-types';
import { checkAll, checkFaultLog, checkFaultLogTail, checkPage, checkVm } from './invariants';
import { formatResult, resolveStep, type TraceStep } from './vocabulary';
import { annotationOwner, isValid, isZero, translate } from './walk';
import { BootMemo } from './boot-memo';
import type { HypBug } from './bugs/ownership';
import type { CallHandler } from './handlers';

/** Pages checked page by page after a call: at most this many of a range (the rest at the end). */
const FOOTPRINT_CAP = 8;

const resultNames = new Map<number, string>();

/** A result as coverage names it: "0", "handle" or "-EPERM" (memoized: it is named on every call). */
export function resultName(r: number): string {
  if (r > 0) return 'handle';
  let name = resultNames.get(r);
  if (name === undefined) resultNames.set(r, (name = r === 0 ? '0' : `-${ERRNO_NAMES[-r] ?? r}`));
  return name;
}

export class Lockstep {
  readonly hyp: Pkvm;
  model: State;
  /** The model at boot, copied for every sequence. */
  private readonly boot: State;
  /** Results of the steps run so far (for "$N" references), and what the model said each should be. */
  results: number[] = [];
  modelResults: number[] = [];
  coverage: Coverage = {};
  calls = 0;
  private writeViolation: string | null = null;
  /** What the end-of-sequence check reuses from boot. */
  private readonly bootMemo: BootMemo;
  /** The page the last hyp write went to, already checked (forgotten when memory is rolled back). */
  private lastChecked = -1;

  constructor(
    readonly config: MachineConfig,
    bugs: readonly HypBug[] = [],
    private readonly handlers: Readonly<Partial<Record<Call['call'], CallHandler>>> = {},
  ) {
    this.hyp = new Pkvm(config);
    for (const b of bugs) b.inject(this.hyp);
    this.hyp.mem.commit(); // boot is the base every sequence returns to
    this.boot = initialState(config, [this.hyp.layout.carveout]);
    this.model = cloneState(this.boot);
    this.bootMemo = new BootMemo(this.hyp);
    // "Hyp writes only pages hyp owns", checked at the moment of every write. Between two writes to
    // the same page nothing else was written, so no ownership changed: one check covers the run.
    this.hyp.mem.onHypWrite = (pfn) => {
      if (pfn === this.lastChecked || this.writeViolation !== null) return;
      this.lastChecked = pfn;
      const t = translate(this.hyp.mem, this.hyp.host_mmu, pfn);
      if (isValid(t) || isZero(t) || annotationOwner(t) !== 1)
        this.writeViolation = `hyp wrote pfn 0x${pfn.toString(16)}, which it does not own (host stage-2: ${isZero(t) ? 'host, unmapped' : isValid(t) ? 'mapped for the host' : `owner id ${annotationOwner(t)}`})`;
    };
  }

  /** Back to the state at boot, for the next sequence. */
  reset(): void {
    this.hyp.mem.undo(0);
    this.model = cloneState(this.boot);
    this.results = [];
    this.modelResults = [];
    this.writeViolation = null;
    this.lastChecked = -1;
  }

  /** Runs step `index` (0-based); returns the failure, if any. */
  step(ts: TraceStep, index: number): Failure | null {
    const n = index + 1;
    const call = resolveStep(ts, this.results);
    const handler = this.handlers[call.call];
    const mark = this.hyp.mem.mark();
    let failure: Failure | null;
    if (handler) {
      const out = handler.run(this, call, n);
      this.record(call, out.result, ts, n);
      this.modelResults[n - 1] = out.modelResult;
      failure = out.failure ?? this.expectFailure(ts, out.result, n);
    } else failure = this.ownershipStep(call, ts, n, mark);
    if (!failure && this.writeViolation) failure = { property: 'hyp-writes-only-own-pages', step: n, message: this.writeViolation };
    return failure;
  }

  private record(call: Call, result: number, ts: TraceStep, n: number): void {
    this.calls++;
    this.results[n - 1] = result;
    const row = (this.coverage[call.call] ??= {});
    const key = resultName(result);
    row[key] = (row[key] ?? 0) + 1;
  }

  private expectFailure(ts: TraceStep, result: number, n: number): Failure | null {
    if (ts.expect === undefined || ts.expect === result) return null;
    return { property: 'expect', step: n, message: `${ts.call} returned ${formatResult(result)}, the trace expects ${formatResult(ts.expect)}` };
  }

  private ownershipStep(call: Call, ts: TraceStep, n: number, mark: number): Failure | null {
    const touched = footprint(this.model, call);
    const want = execModel(this.model, call);
    let got: number;
    try {
      got = handle_host_hcall(this.hyp, call);
    } catch (e) {
      if (e instanceof PoolExhausted) return { property: 'harness-limit', step: n, message: e.message };
      throw e;
    }
    this.record(call, got, ts, n);
    this.modelResults[n - 1] = want;
    if (want !== got) return { property: 'results-agree', step: n, message: `${call.call}: model returned ${formatResult(want)}, hyp returned ${formatResult(got)}` };
    const expect = this.expectFailure(ts, got, n);
    if (expect) return expect;
    if (got < 0 && this.hyp.mem.mark() !== mark) {
      const changed = this.hyp.mem.diffSince(mark).filter(([addr]) => !(call.call === 'host_access' && this.hyp.faults.ownsCell(addr)));
      if (changed.length > 0) {
        const [addr, then, now] = changed[0];
        return { property: 'failed-call-changes-nothing', step: n, message: `${call.call} failed with ${formatResult(got)} but changed ${changed.length} location(s), first ${this.hyp.mem.describe(addr)}: 0x${(then >>> 0).toString(16)} -> 0x${(now >>> 0).toString(16)}` };
      }
    }
    for (const pfn of touched.pages) {
      const f = checkPage(this.model, this.hyp, pfn, n);
      if (f) return f;
    }
    for (const h of touched.vms) {
      const f = checkVm(this.model, this.hyp, h, n, touched.gfns);
      if (f) return f;
    }
    if (call.call === 'host_access') return checkFaultLogTail(this.model, this.hyp, n);
    return call.call === '__pkvm_init_vm' ? checkFaultLog(this.model, this.hyp, n) : null;
  }

  /** The full check at the end of a sequence (what was not written since boot is not read again). */
  finish(): Failure | null {
    return checkAll(this.model, this.hyp, this.results.length, this.bootMemo.hints(this.hyp.mem.writtenPages(0)));
  }
}

/** The first pages of a range (at most FOOTPRINT_CAP). */
function range(first: number, nr: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < nr && i < FOOTPRINT_CAP; i++) out.push(first + i);
  return out;
}

const NOTHING = { pages: [], vms: [] } as const;

/** The pages, VMs and guest frames a call may change, computed before it runs (from the model). */
export function footprint(model: State, call: Call): { readonly pages: readonly number[]; readonly vms: readonly number[]; readonly gfns?: readonly number[] } {
  const a = call.args as Partial<{ pfn: number; nr_pages: number; vm: number; gfn: number }>;
  switch (call.call) {
    case '__pkvm_host_share_guest':
      return { pages: range(a.pfn!, a.nr_pages!), vms: [a.vm!], gfns: range(a.gfn!, a.nr_pages!) };
    case '__pkvm_host_unshare_guest': {
      const m = model.vms.get(a.vm!)?.gfns.get(a.gfn!);
      return { pages: m ? range(m.pfn, m.nr) : [], vms: [a.vm!], gfns: range(a.gfn!, a.nr_pages!) };
    }
    case '__pkvm_teardown_vm': {
      const vm = model.vms.get(a.vm!);
      if (!vm) return { pages: [], vms: [a.vm!] };
      const pages = range(vm.first, vm.nr);
      let guestPages = 0;
      for (const m of vm.gfns.values()) {
        if (guestPages++ === FOOTPRINT_CAP) break;
        pages.push(m.pfn);
      }
      return { pages, vms: [a.vm!] };
    }
    case '__pkvm_init_vm':
      return { pages: range(a.pfn!, a.nr_pages!), vms: [] };
    case '__pkvm_host_share_hyp':
    case '__pkvm_host_unshare_hyp':
    case 'host_access':
      return { pages: [a.pfn!], vms: [] };
    default:
      return a.pfn === undefined ? NOTHING : { pages: range(a.pfn, a.nr_pages ?? 1), vms: [] };
  }
}
