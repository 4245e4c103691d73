// The real-kernel target: Linux 6.12's hypervisor under QEMU, driven through the agent. Each step
// is one round trip: the call and a probe of every page of its footprint go in one batch. The
// model stays the oracle; what the real hypervisor would answer with a panic (a host access to a
// page it does not own, unpinning a page that is not pinned: docs/semantics.md) is not sent, and
// for a forbidden access the probe must show that the host stage-2 would fault.
import { cleanupOps } from '../kernel/cleanup';
import { deviationOf } from '../kernel/deviations';
import { hypervisorTrace, panicSummary } from '../kernel/panic-log';
import type { Call, CallName } from '../../types/calls';
import type { MachineConfig } from '../../types/config';
import { PTRS_PER_TABLE, type MemoryRegion } from '../../types/config';
import { hypLayout } from '../../hyp/setup';
import { HYP_PANIC } from '../../types/kernel';
import { isMemory } from '../../model/range';
import { initialState, page, type Page, type State } from '../../model/state';
import { OP, REFUSED, type Op, type OpCode, type OpResult } from '../kernel/abi';
import { decodeProbe, describeModelPage, describeProbe, hexPte, hostReaches, probeAgrees } from '../kernel/probe';
import { Machine, MachineDown } from '../kernel/qemu';
import { KERNEL_RAM_MIB, RAM_FIRST_PFN, Relocation, windowPages } from '../kernel/relocate';
import type { Failure } from '../suite-types';
import { TargetFailure, type Footprint, type Target } from '../target';
import { formatResult, hex } from '../vocabulary';
import { P } from '../properties';

/** The calls of our vocabulary that 6.12's hypervisor runs, and the op that runs each. */
const OPS: Partial<Record<CallName, OpCode>> = {
  __pkvm_host_share_hyp: OP.SHARE_HYP,
  __pkvm_host_unshare_hyp: OP.UNSHARE_HYP,
  __pkvm_host_donate_hyp: OP.DONATE_HYP,
  __pkvm_hyp_donate_host: OP.HYP_DONATE_HOST,
  __pkvm_host_share_ffa: OP.SHARE_FFA,
  __pkvm_host_unshare_ffa: OP.UNSHARE_FFA,
  hyp_pin_shared_mem: OP.PIN,
  hyp_unpin_shared_mem: OP.UNPIN,
};

/** The snapshot runs through its own handler (checker/snapshot/kernel.ts), with runHandled. */
export const KERNEL_CALLS: readonly CallName[] = [...(Object.keys(OPS) as CallName[]), 'host_access', '__pkvm_host_stage2_snapshot'];

export interface KernelTargetOptions {
  readonly imageDir: string;
  readonly timeoutMs?: number;
  /**
   * One round trip per call, so each result is the kernel's own when the call returns (replay).
   * Otherwise calls are pipelined: a sequence goes out in one batch at its end (or every
   * MAX_QUEUED ops), and the first disagreement is reported with its step then.
   */
  readonly stepwise?: boolean;
}

/** Ops queued before a pipelined batch goes out (the agent takes up to MAX_OPS at once). */
const MAX_QUEUED = 1024;

/** The ops of an end-of-sequence scan, and the pages it probes one by one (in op order). */
interface ScanPlan {
  readonly ops: readonly Op[];
  readonly probed: readonly number[];
}

/** A call as the target will send it, and what it must be judged against. */
interface Planned {
  readonly step: number;
  readonly call: CallName;
  readonly want: number;
  readonly op: Op | null;
  /** The memory pages of its footprint, probed after it. */
  readonly pfns: readonly number[];
  /** The model's pages after the call, in `pfns` order (set by check). */
  expected: readonly Page[];
}

/** The call's op (if sent), then a probe of each footprint page. */
const opsOf = (p: Planned, r: Relocation): Op[] => [...(p.op ? [p.op] : []), ...p.pfns.map((pfn) => ({ op: OP.PROBE, a: r.pfn(pfn), b: 0 }))];

/** Counts a run reports: what was sent, what was held back, how often the machine was rebooted. */
export interface KernelStats {
  sent: number;
  notSent: number;
  reboots: number;
  bootMs: number[];
}

export class KernelTarget implements Target {
  readonly name = 'kernel';
  /**
   * The simulation's carve-out, laid into the window too and donated to hyp at boot, so that a
   * trace's pages are in the same state on both targets (the kernel's own hyp memory lies outside
   * the window).
   */
  readonly reserved: readonly MemoryRegion[];
  readonly stats: KernelStats = { sent: 0, notSent: 0, reboots: 0, bootMs: [] };
  private machine: Machine | null = null;
  private reloc: Relocation | null = null;
  /** Stepwise: the last call and what came back. Pipelined: the calls not sent yet, and their op count. */
  private last: { readonly plan: Planned; readonly res: OpResult[] } | null = null;
  private queue: Planned[] = [];
  private queued = 0;
  /** Stepwise: the ops sent since boot and their answers (to rebuild after a panic), and what to say. */
  private history: { readonly op: Op; readonly ret: number }[] = [];
  private said: string[] = [];
  /** 2 MiB blocks (trace pfn / 512) the sequence touched: the end check scans these. */
  private touchedBlocks = new Set<number>();
  /** The console of the last machine that went down, for replay output. */
  lastConsole = '';

  constructor(
    readonly config: MachineConfig,
    private readonly opts: KernelTargetOptions,
  ) {
    windowPages(config); // refuse a config the window cannot hold before booting anything
    this.reserved = [hypLayout(config).carveout];
  }

  private isReserved(pfn: number): boolean {
    return this.reserved.some(([first, nr]) => pfn >= first && pfn < first + nr);
  }

  supports(call: CallName): boolean {
    return KERNEL_CALLS.includes(call);
  }

  /** The relocation in force (boots the machine if needed). */
  relocation(): Relocation {
    this.boot();
    return this.reloc!;
  }

  private boot(): Machine {
    if (this.machine) return this.machine;
    const pages = windowPages(this.config);
    const m = new Machine({
      imageDir: this.opts.imageDir,
      windowBase: (RAM_FIRST_PFN + KERNEL_RAM_MIB * 256) * 4096,
      windowBytes: pages * 4096,
      ramMiB: KERNEL_RAM_MIB + pages / 256,
      timeoutMs: this.opts.timeoutMs,
    });
    const reloc = new Relocation(this.config, m.hello);
    const carve = m.run(this.reserved.map(([first, nr]) => ({ op: OP.DONATE_HYP, a: reloc.pfn(first), b: nr })));
    if (carve.some((r) => r.ret !== 0)) {
      m.close();
      throw new Error(`the kernel refused to take the carve-out: ${carve.map((r) => formatResult(r.ret)).join(', ')}`);
    }
    this.reloc = reloc;
    this.stats.bootMs.push(m.bootMs);
    this.machine = m;
    return m;
  }

  /** Stops the machine (the next call boots a fresh one). */
  close(): void {
    this.machine?.close();
    this.machine = null;
  }

  private run(ops: readonly Op[], step: number): OpResult[] {
    const m = this.boot();
    try {
      return m.run(ops);
    } catch (e) {
      if (!(e instanceof MachineDown)) throw e;
      this.lastConsole = e.console;
      this.machine = null;
      m.close();
      throw new TargetFailure({ property: P.kernelAlive, step, message: `${e.message}${panicSummary(e.console)}` });
    }
  }

  reset(model: State): void {
    this.last = null;
    this.history = [];
    const blocks = this.touchedBlocks;
    this.touchedBlocks = new Set();
    if (!this.machine) {
      this.queue = [];
      this.queued = 0;
      return;
    }
    // Undo what the model says the sequence left behind (after any calls a sequence that stopped
    // early left queued), and check in the same batch that every page of the touched blocks is back
    // in its boot state; if not, start a fresh machine.
    const undo = cleanupOps(model, (p) => this.reloc!.pfn(p));
    const boot = initialState(model.config, this.reserved);
    const verify = this.scanOps(blocks, boot);
    try {
      const res = this.flush([...undo, ...verify.ops]).extra;
      if (res.slice(0, undo.length).every((r) => r.ret === 0) && this.judgeScan(verify, res.slice(undo.length), boot, 0) === null) return;
    } catch (e) {
      if (!(e instanceof TargetFailure)) throw e;
    }
    this.stats.reboots++;
    this.close();
  }

  execute(call: Call, want: number, touched: Footprint, step: number, model: State): number {
    const r = this.relocation();
    this.touch(call);
    const deliberate = deviationOf(model, call, want) !== undefined;
    const plan: Planned = { step, call: call.call, want, op: deliberate ? null : this.opFor(call, want), pfns: touched.pages.filter((p) => isMemory(this.config, p)), expected: [] };
    if (this.opts.stepwise) {
      if (want === HYP_PANIC && plan.op) return this.expectPanic(plan);
      this.last = { plan, res: this.run(opsOf(plan, r), step) };
      if (plan.op && this.last.res[0].ret !== REFUSED) this.history.push({ op: plan.op, ret: this.last.res[0].ret });
      return this.resultOf(plan, this.last.res);
    }
    // Pipelined: the call goes out with the rest of the sequence; until then the model's answer stands in.
    this.queue.push(plan);
    this.queued += 1 + plan.pfns.length;
    if (this.queued > MAX_QUEUED) {
      const f = this.flush().failure;
      if (f) throw new TargetFailure(f);
    }
    return want;
  }

  /**
   * Sends a call the model says panics the hypervisor: the machine must go down with a hyp BUG. A
   * panicking call changes nothing in the model, so a fresh machine that runs the calls before it
   * again is where the trace goes on.
   */
  private expectPanic(plan: Planned): number {
    try {
      const [res] = this.run([plan.op!], plan.step);
      if (res.ret === REFUSED) return this.resultOf(plan, [res]); // it reaches RAM outside the window
    } catch (e) {
      if (!(e instanceof TargetFailure)) throw e;
      const trace = hypervisorTrace(this.lastConsole);
      if (trace.length === 0) throw e;
      this.said.push(...trace, `(a fresh machine runs the ${this.history.length} call(s) before this step again)`);
      this.stats.sent++;
      this.last = null;
      const again = this.run(this.history.map((h) => h.op), plan.step);
      const differs = again.findIndex((res, i) => res.ret !== this.history[i].ret);
      if (differs >= 0)
        throw new TargetFailure({ property: P.kernelAlive, step: plan.step, message: `after the panic, a fresh machine answered call ${differs + 1} of the trace with ${formatResult(again[differs].ret)}, the first with ${formatResult(this.history[differs].ret)}` });
      return HYP_PANIC;
    }
    // Still alive: it did not panic; probe nothing more (the model's pages are unchanged).
    this.last = { plan: { ...plan, pfns: [] }, res: [] };
    this.stats.sent++;
    return 0;
  }

  /** Lines about the step just run: the hypervisor's own panic report, once. */
  report(): string[] {
    const lines = this.said;
    this.said = [];
    return lines;
  }

  /** What the kernel answered for a planned call (the model's answer for one not sent). */
  private resultOf(plan: Planned, res: readonly OpResult[]): number {
    if (!plan.op || res[0].ret === REFUSED) {
      // Not sent: it would panic, touches no memory, or reaches RAM outside the window (docs/kernel.md).
      this.stats.notSent++;
      return plan.want;
    }
    this.stats.sent++;
    return plan.op.op === OP.HOST_READ || plan.op.op === OP.HOST_WRITE ? 0 : res[0].ret;
  }

  /**
   * Sends every queued call with its probes, then `extra` ops, in one batch; judges the calls in
   * order and hands back the results of the extra ops.
   */
  private flush(extra: readonly Op[] = []): { readonly failure: Failure | null; readonly extra: OpResult[] } {
    const queue = this.queue;
    this.queue = [];
    this.queued = 0;
    if (queue.length === 0 && extra.length === 0) return { failure: null, extra: [] };
    const r = this.relocation();
    const res = this.run([...queue.flatMap((p) => opsOf(p, r)), ...extra], queue[0]?.step ?? 0);
    let at = 0;
    let failure: Failure | null = null;
    for (const plan of queue) {
      const mine = res.slice(at, at + (plan.op ? 1 : 0) + plan.pfns.length);
      at += mine.length;
      if (failure) continue;
      const got = this.resultOf(plan, mine);
      if (got !== plan.want) failure = { property: P.resultsAgree, step: plan.step, message: `${plan.call}: model returned ${formatResult(plan.want)}, the kernel returned ${formatResult(got)}` };
      else failure = this.judgeProbes(plan, mine, plan.expected);
    }
    return { failure, extra: res.slice(at) };
  }


  /** The op that runs a call, or null when the call is not sent (it would panic, or touches no memory). */
  private opFor(call: Call, want: number): Op | null {
    const r = this.reloc!;
    if (call.call === 'host_access') {
      const a = call.args;
      if (want !== 0 || !isMemory(this.config, a.pfn)) return null;
      return a.write ? { op: OP.HOST_WRITE, a: r.pfn(a.pfn), b: 0x706b6d00 + (a.pfn % 256) } : { op: OP.HOST_READ, a: r.pfn(a.pfn), b: 0 };
    }
    const code = OPS[call.call];
    if (code === undefined) throw new Error(`the kernel target cannot run ${call.call}`);
    // What panics the real hypervisor (an unpin without a pin, the 65,536th pin) is sent only by a
    // replay, to see the panic happen; a run never sends it.
    if (want === HYP_PANIC && !this.opts.stepwise) return null;
    const a = call.args as { pfn: number; nr_pages?: number };
    return { op: code, a: r.pfn(a.pfn), b: a.nr_pages ?? 1 };
  }

  private touch(call: Call): void {
    const a = call.args as Partial<{ pfn: number; nr_pages: number }>;
    if (a.pfn === undefined) return;
    const nr = Math.min(a.nr_pages ?? 1, PTRS_PER_TABLE * 8);
    for (let b = Math.floor(a.pfn / PTRS_PER_TABLE); b <= Math.floor((a.pfn + Math.max(nr, 1) - 1) / PTRS_PER_TABLE); b++)
      if (isMemory(this.config, b * PTRS_PER_TABLE) || isMemory(this.config, a.pfn)) this.touchedBlocks.add(b);
  }

  check(model: State): Failure | null {
    const plan = this.opts.stepwise ? this.last?.plan : this.queue[this.queue.length - 1];
    if (!plan) return null;
    const expected = plan.pfns.map((p) => page(model, p));
    if (!this.opts.stepwise) {
      plan.expected = expected;
      return null;
    }
    return this.judgeProbes(plan, this.last!.res, expected);
  }

  /** The probes taken after a call against the model's pages after it. */
  private judgeProbes(plan: Planned, res: readonly OpResult[], expected: readonly Page[]): Failure | null {
    const first = plan.op ? 1 : 0;
    for (let i = 0; i < plan.pfns.length; i++) {
      const p = plan.pfns[i];
      const probe = decodeProbe(res[first + i]);
      const want = expected[i];
      if (!probeAgrees(want, probe))
        return { property: P.stateAgrees, step: plan.step, message: `pfn ${hex(p)} (kernel pfn ${hex(this.reloc!.pfn(p))}): model ${describeModelPage(want)}, kernel ${describeProbe(probe)}` };
      const owned = want.owner === 'host';
      if (hostReaches(probe) !== owned)
        return { property: P.hostReachesOnlyItsPages, step: plan.step, message: `pfn ${hex(p)}: the host ${owned ? 'owns it but its stage-2 blocks it' : `does not own it but its stage-2 lets it through (${describeProbe(probe)})`}` };
    }
    return null;
  }

  /**
   * For a call with its own handler: the queued calls go out first, then `ops`, in one batch; the
   * memory pages it names join the end-of-sequence scan. Throws TargetFailure for a queued call's.
   */
  runHandled(ops: readonly Op[], pfns: readonly number[], step: number): OpResult[] {
    for (const p of pfns) this.touchedBlocks.add(Math.floor(p / PTRS_PER_TABLE));
    const out = this.flush(ops);
    if (out.failure) throw new TargetFailure(out.failure);
    if (out.extra.length < ops.length) throw new TargetFailure({ property: P.kernelAlive, step, message: `the agent answered ${out.extra.length} of ${ops.length} ops` });
    return out.extra;
  }

  notes(): string[] {
    return this.relocation()
      .describe()
      .map((l) => `relocated: ${l}`);
  }

  /** The state probe of the page, raw entries included. */
  explain(pfn: number): { readonly found: string; readonly detail: string[] } {
    const real = this.relocation().pfn(pfn);
    try {
      const [r] = this.run([{ op: OP.PROBE, a: real, b: 0 }], 0);
      const p = decodeProbe(r);
      return { found: describeProbe(p), detail: [`kernel pfn ${hex(real)}: host stage-2 pte ${hexPte(p.host)}, hyp stage-1 pte ${hexPte(p.hyp)}`] };
    } catch (e) {
      if (!(e instanceof TargetFailure)) throw e;
      return { found: 'unknown: the machine is down', detail: hypervisorTrace(this.lastConsole) };
    }
  }

  pending(): Failure | null {
    return null;
  }

  finish(model: State, steps: number): Failure | null {
    try {
      const scan = this.scanOps(this.touchedBlocks, model);
      const out = this.flush(scan.ops);
      return out.failure ?? this.judgeScan(scan, out.extra, model, steps);
    } catch (e) {
      if (e instanceof TargetFailure) return e.failure;
      throw e;
    }
  }

  /**
   * Every page of the blocks the sequence touched: those the model says are in their boot state
   * must scan clean; the others are probed and compared one by one.
   */
  private scanOps(blocks: ReadonlySet<number>, model: State): ScanPlan {
    const r = this.reloc;
    const ops: Op[] = [];
    const probed: number[] = [];
    if (!r) return { ops, probed };
    for (const b of [...blocks].sort((x, y) => x - y)) {
      let runStart = -1;
      const endRun = (end: number): void => {
        if (runStart >= 0) ops.push({ op: OP.SCAN, a: r.pfn(runStart), b: end - runStart });
        runStart = -1;
      };
      for (let p = b * PTRS_PER_TABLE; p < (b + 1) * PTRS_PER_TABLE; p++) {
        // The carve-out in its boot state is hyp's: no scan expects it clean.
        if (!isMemory(model.config, p) || (this.isReserved(p) && !model.pages.has(p))) endRun(p);
        else if (model.pages.has(p)) {
          endRun(p);
          probed.push(p);
          ops.push({ op: OP.PROBE, a: r.pfn(p), b: 0 });
        } else if (runStart < 0) runStart = p;
      }
      endRun((b + 1) * PTRS_PER_TABLE);
    }
    return { ops, probed };
  }

  private judgeScan(plan: ScanPlan, res: readonly OpResult[], model: State, step: number): Failure | null {
    let k = 0;
    for (let i = 0; i < plan.ops.length; i++) {
      if (plan.ops[i].op === OP.SCAN) {
        const s = res[i];
        if (s.ret !== 0)
          return { property: P.stateAgrees, step, message: `${s.ret} page(s) the model says are the host's alone are not: ${s.v[1]} in the host stage-2, ${s.v[2] & 0xffffffffn} mapped by hyp, ${s.v[2] >> 32n} with a refcount; the first is kernel pfn ${hex(Number(s.v[0]))} (${this.reloc!.describePfn(Number(s.v[0]))})` };
        continue;
      }
      const p = plan.probed[k++];
      const probe = decodeProbe(res[i]);
      if (!probeAgrees(page(model, p), probe)) return { property: P.stateAgrees, step, message: `pfn ${hex(p)} at the end: model ${describeModelPage(page(model, p))}, kernel ${describeProbe(probe)}` };
    }
    return null;
  }
}
