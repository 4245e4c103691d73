// The lockstep runner: executes each call on the model and on a target (the simulation in hyp/ or
// the real kernel), compares the results, and has the target check the pages the call touched;
// `finish` checks everything at the end of a sequence.
import type { Call } from '../types/calls';
import { ERRNO_NAMES } from '../types/errno';
import { OUTCOME_NAMES, u32Arg } from '../types/kernel';
import type { MachineConfig } from '../types/config';
import { cloneState, execModel, initialState, type State } from '../model';
import type { Pkvm } from '../hyp/pkvm';
import type { Coverage, Failure } from './suite-types';
import { formatResult, resolveStep, type TraceStep } from './vocabulary';
import type { HypBug } from './bugs/ownership';
import type { CallHandler } from './handlers';
import { TargetFailure, type Footprint, type Target } from './target';
import { SimTarget } from './targets/sim';
import { P } from './properties';

/** Pages checked page by page after a call: at most this many of a range (the rest at the end). */
const FOOTPRINT_CAP = 8;

const resultNames = new Map<number, string>();

/**
 * A result as coverage names it: "0", "-EPERM", "handle" (a VM handle) or "1" (test_clear_young's
 * "young"); memoized, since it is named on every call.
 */
export function resultName(r: number): string {
  if (r > 0) return r === 1 ? '1' : 'handle';
  let name = resultNames.get(r);
  if (name === undefined) resultNames.set(r, (name = r === 0 ? '0' : (OUTCOME_NAMES[r] ?? `-${ERRNO_NAMES[-r] ?? r}`)));
  return name;
}

export class Lockstep {
  readonly target: Target;
  model: State;
  /** The model at boot, copied for every sequence. */
  private readonly boot: State;
  /** Results of the steps run so far (for "$N" references), and what the model said each should be. */
  results: number[] = [];
  modelResults: number[] = [];
  coverage: Coverage = {};
  calls = 0;

  constructor(
    readonly config: MachineConfig,
    bugsOrTarget: readonly HypBug[] | Target = [],
    private readonly handlers: Readonly<Partial<Record<Call['call'], CallHandler>>> = {},
  ) {
    this.target = Array.isArray(bugsOrTarget) ? new SimTarget(config, bugsOrTarget) : (bugsOrTarget as Target);
    this.boot = initialState(config, this.target.reserved);
    this.model = cloneState(this.boot);
  }

  /** The simulated hypervisor, for the areas that inspect it from the inside (snapshot, unwinder). */
  get hyp(): Pkvm {
    if (this.target instanceof SimTarget) return this.target.hyp;
    throw new Error(`the ${this.target.name} target has no simulated hypervisor to inspect`);
  }

  /** Back to the state at boot, for the next sequence. */
  reset(): void {
    this.target.reset(this.model);
    this.model = cloneState(this.boot);
    this.results = [];
    this.modelResults = [];
  }

  /** Releases the target (powers a kernel's machine off). */
  close(): void {
    this.target.close();
  }

  /** Runs step `index` (0-based); returns the failure, if any. */
  step(ts: TraceStep, index: number): Failure | null {
    const n = index + 1;
    const call = resolveStep(ts, this.results);
    const handler = this.handlers[call.call];
    let failure: Failure | null;
    if (handler) {
      const out = handler.run(this, call, n);
      this.record(call, out.result, n);
      this.modelResults[n - 1] = out.modelResult;
      failure = out.failure ?? this.expectFailure(ts, out.result, n);
    } else failure = this.ownershipStep(call, ts, n);
    return failure ?? this.target.pending(n);
  }

  private record(call: Call, result: number, n: number): void {
    this.calls++;
    this.results[n - 1] = result;
    const row = (this.coverage[call.call] ??= {});
    const key = resultName(result);
    row[key] = (row[key] ?? 0) + 1;
  }

  private expectFailure(ts: TraceStep, result: number, n: number): Failure | null {
    if (ts.expect === undefined || ts.expect === result) return null;
    return { property: P.expect, step: n, message: `${ts.call} returned ${formatResult(result)}, the trace expects ${formatResult(ts.expect)}` };
  }

  private ownershipStep(call: Call, ts: TraceStep, n: number): Failure | null {
    const touched = footprint(this.model, call);
    const want = execModel(this.model, call);
    let got: number;
    try {
      got = this.target.execute(call, want, touched, n, this.model);
    } catch (e) {
      if (e instanceof TargetFailure) return e.failure;
      throw e;
    }
    this.record(call, got, n);
    this.modelResults[n - 1] = want;
    if (want !== got) return { property: P.resultsAgree, step: n, message: `${call.call}: model returned ${formatResult(want)}, ${this.target.name === 'sim' ? 'hyp' : 'the kernel'} returned ${formatResult(got)}` };
    return this.expectFailure(ts, got, n) ?? this.target.check(this.model, call, got, touched, n);
  }

  /** The full check at the end of a sequence (what was not written since boot is not read again). */
  finish(): Failure | null {
    return this.target.finish(this.model, this.results.length);
  }
}

/** The first pages of a range (at most FOOTPRINT_CAP). */
function range(first: number, nr: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < nr && i < FOOTPRINT_CAP; i++) out.push(first + i);
  return out;
}

const NOTHING = { pages: [], vms: [] } as const;

/** The VM a call on the loaded vCPU acts on: the loaded vCPU's, else the one it names (if any). */
function onLoadedVcpu(model: State, named: number | null): number[] {
  const vm = model.loaded?.vm ?? named;
  return vm === null ? [] : [vm];
}

/** The pages, VMs and guest frames a call may change, computed before it runs (from the model). */
export function footprint(model: State, call: Call): Footprint {
  const a = call.args as Partial<{ pfn: number; nr_pages: number; vm: number | null; gfn: number }>;
  // The VM a call names, as the kernel reads its 32-bit handle register.
  const named = a.vm === null || a.vm === undefined ? null : u32Arg(a.vm);
  switch (call.call) {
    case '__pkvm_host_share_guest':
      return { pages: range(a.pfn!, a.nr_pages!), vms: onLoadedVcpu(model, named), gfns: range(a.gfn!, a.nr_pages!) };
    case '__pkvm_host_relax_perms_guest':
    case '__pkvm_host_mkyoung_guest':
      return { pages: [], vms: onLoadedVcpu(model, named), gfns: [a.gfn!] };
    case '__pkvm_host_wrprotect_guest':
    case '__pkvm_host_test_clear_young_guest':
      return { pages: [], vms: [named!], gfns: range(a.gfn!, a.nr_pages!) };
    case '__pkvm_host_unshare_guest': {
      const m = model.vms.get(named!)?.gfns.get(a.gfn!);
      return { pages: m ? range(m.pfn, m.nr) : [], vms: [named!], gfns: range(a.gfn!, a.nr_pages!) };
    }
    case '__pkvm_teardown_vm': {
      const vm = model.vms.get(named!);
      if (!vm) return { pages: [], vms: [named!] };
      const pages = range(vm.first, vm.nr);
      let guestPages = 0;
      for (const m of vm.gfns.values()) {
        if (guestPages++ === FOOTPRINT_CAP) break;
        pages.push(m.pfn);
      }
      return { pages, vms: [named!] };
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
