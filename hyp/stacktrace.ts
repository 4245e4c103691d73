// The nVHE hypervisor stack unwinder (KVM, 6.12; 6.16 the same, docs/semantics.md §9): EL2 saves what the host needs when hyp panics
// (hyp/nvhe/stacktrace.c), and the host prints the call trace (kvm/stacktrace.c, handle_exit.c).
//
// - Protected mode (pKVM): the host may not read hyp memory, so EL2 unwinds its own stacks into the
//   per-CPU pkvm_stacktrace buffer; the host prints the buffer's entries up to a 0.
// - Non-protected mode: EL2 only records where its stacks are and where to start (kvm_stacktrace_info);
//   the host unwinds the hyp stacks itself, through its own kernel aliases of them.
//
// Each kernel function is a small method, so that a known bug can be re-introduced into one
// instance by replacing exactly one method (checker/bugs/unwinder.ts).
import { EINVAL, FrameRecordUnwinder, type StackInfo, type UnwindState } from './stacktrace-common';
import {
  OVERFLOW_STACK_SIZE,
  VA_BITS,
  hypStackBase,
  overflowStackBase,
  physToKimg,
  pkvmStacktraceHypVa,
  pkvmStacktraceKernVa,
  type NvheLayout,
} from './stacktrace-layout';
import { u64, type StackMemory } from './stacktrace-memory';
import { Kallsyms, hex016, runtimeSymbols } from './symbols';

/** `upstream`: the merged kernel's lines; `v5`: the v4/v5 patch series' ("Protected nVHE HYP call trace"). */
export type TraceFormat = 'upstream' | 'v5';

export interface NvheStacktraceOptions {
  /** is_protected_kvm_enabled(). */
  readonly protected: boolean;
  readonly format: TraceFormat;
}

/** struct kvm_nvhe_stacktrace_info: what EL2 leaves for the host to unwind from (non-protected). */
export interface KvmNvheStacktraceInfo {
  stack_base: bigint;
  overflow_stack_base: bigint;
  fp: bigint;
  pc: bigint;
}

/** What __hyp_do_panic hands the host's nvhe_hyp_panic_handler: the faulting address, two ways. */
export interface HypPanicExit {
  readonly elr_virt: bigint;
  readonly elr_phys: bigint;
}

export class NvheStacktrace extends FrameRecordUnwinder {
  /** Per-CPU kvm_stacktrace_info, written by EL2 and read by the host. */
  readonly kvm_stacktrace_info: KvmNvheStacktraceInfo = { stack_base: 0n, overflow_stack_base: 0n, fp: 0n, pc: 0n };
  /** The host kernel log: one string per kvm_err() line. */
  readonly log: string[] = [];
  readonly kallsyms: Kallsyms;

  constructor(
    readonly layout: NvheLayout,
    readonly mem: StackMemory,
    readonly opts: NvheStacktraceOptions,
  ) {
    super();
    this.kallsyms = new Kallsyms(runtimeSymbols(layout.kaslr_offset));
  }

  // ---- EL2 (arch/arm64/kvm/hyp/nvhe/stacktrace.c) ----

  stackinfo_get_overflow(): StackInfo {
    const low = overflowStackBase(this.layout);
    return { low, high: low + BigInt(OVERFLOW_STACK_SIZE) };
  }

  stackinfo_get_hyp(): StackInfo {
    const high = this.layout.stack_hyp_va;
    return { low: high - BigInt(this.layout.page_size), high };
  }

  el2_unwind_next(state: UnwindState): number {
    return this.unwind_next_frame_record(state, (addr) => this.mem.read64('el2', addr));
  }

  /** Stores one word of this CPU's pkvm_stacktrace buffer. */
  pkvm_stacktrace_store(idx: number, value: bigint): void {
    this.mem.write64('el2', pkvmStacktraceHypVa(this.layout) + BigInt(idx) * 8n, value);
  }

  /** Saves one entry; needs 2 free slots, one for the entry and one for the 0 after it. */
  pkvm_save_backtrace_entry(idx: { value: number }, where: bigint): boolean {
    if (idx.value > this.layout.stacktrace_entries - 2) return false;
    this.pkvm_stacktrace_store(idx.value, where);
    idx.value++;
    this.pkvm_stacktrace_store(idx.value, 0n);
    return true;
  }

  pkvm_save_backtrace(fp: bigint, pc: bigint): void {
    const state = this.kvm_nvhe_unwind_init([this.stackinfo_get_overflow(), this.stackinfo_get_hyp()], fp, pc);
    const idx = { value: 0 };
    this.unwind(
      state,
      (where) => this.pkvm_save_backtrace_entry(idx, where),
      (s) => this.el2_unwind_next(s),
    );
  }

  hyp_prepare_backtrace(fp: bigint, pc: bigint): void {
    const info = this.kvm_stacktrace_info;
    info.stack_base = this.layout.stack_hyp_va - BigInt(this.layout.page_size);
    info.overflow_stack_base = overflowStackBase(this.layout);
    info.fp = fp;
    info.pc = pc;
  }

  /** Called by hyp_panic with its own frame and pc. */
  kvm_nvhe_prepare_backtrace(fp: bigint, pc: bigint): void {
    if (this.opts.protected) this.pkvm_save_backtrace(fp, pc);
    else this.hyp_prepare_backtrace(fp, pc);
  }

  // ---- host (arch/arm64/kvm/stacktrace.c) ----

  /** The hyp stack page and the overflow stack at their hyp VAs, from what EL2 recorded. */
  host_stackinfo_get_hyp(): StackInfo {
    const low = this.kvm_stacktrace_info.stack_base;
    return { low, high: low + BigInt(this.layout.page_size) };
  }

  host_stackinfo_get_overflow(): StackInfo {
    const low = this.kvm_stacktrace_info.overflow_stack_base;
    return { low, high: low + BigInt(OVERFLOW_STACK_SIZE) };
  }

  /** The same two stacks at the host's kernel VAs (its aliases of their pages). */
  stackinfo_get_hyp_kern_va(): StackInfo {
    const low = this.layout.kvm_arm_hyp_stack_page;
    return { low, high: low + BigInt(this.layout.page_size) };
  }

  stackinfo_get_overflow_kern_va(): StackInfo {
    const low = this.layout.percpu_kern_va + BigInt(this.layout.overflow_stack_off);
    return { low, high: low + BigInt(OVERFLOW_STACK_SIZE) };
  }

  /**
   * kvm_nvhe_stack_kern_va(): the kernel VA of [addr, addr + size) if it lies on the hyp stack or the
   * overflow stack (checked at their hyp VAs, in that order), else null.
   */
  kvm_nvhe_stack_kern_va(addr: bigint, size: bigint): bigint | null {
    for (const [stack_hyp, stack_kern] of [
      [this.host_stackinfo_get_hyp(), this.stackinfo_get_hyp_kern_va()],
      [this.host_stackinfo_get_overflow(), this.stackinfo_get_overflow_kern_va()],
    ] as const)
      if (this.stackinfo_on_stack(stack_hyp, addr, size)) return u64(addr - stack_hyp.low + stack_kern.low);
    return null;
  }

  /** The fp is a hyp VA: translate it to the host's alias, then unwind over the kernel-VA stacks. */
  host_unwind_next(state: UnwindState): number {
    const kern_fp = this.kvm_nvhe_stack_kern_va(state.fp, 16n);
    if (kern_fp === null) return -EINVAL;
    state.fp = kern_fp;
    return this.unwind_next_frame_record(state, (addr) => this.mem.read64('host', addr));
  }

  kvm_err(line: string): void {
    this.log.push(line);
  }

  /** The run-time address %pB looks up: a kernel-image address plus kaslr_offset(). */
  kvm_symbol_address(addr: bigint): bigint {
    return u64(addr + this.layout.kaslr_offset);
  }

  /** Masks tags (and pointer-authentication codes) off a hyp pc, converts it to a kernel address, prints it. */
  kvm_nvhe_dump_backtrace_entry(hyp_offset: bigint, where: bigint): boolean {
    const va_mask = (1n << VA_BITS) - 1n;
    const addr = u64((where & va_mask) + hyp_offset);
    this.kvm_err(` [<${hex016(addr)}>] ${this.kallsyms.sprint_backtrace(this.kvm_symbol_address(addr))}`);
    return true;
  }

  kvm_nvhe_dump_backtrace_start(): void {
    if (this.opts.format === 'upstream') this.kvm_err('nVHE call trace:');
    else this.kvm_err(`${this.opts.protected ? 'Protected' : 'Non-protected'} nVHE HYP call trace:`);
  }

  kvm_nvhe_dump_backtrace_end(): void {
    if (this.opts.format === 'upstream') this.kvm_err('---[ end nVHE call trace ]---');
    else this.kvm_err(`---- End of ${this.opts.protected ? 'Protected' : 'Non-protected'} nVHE HYP call trace ----`);
  }

  /** Loads one word of the pkvm_stacktrace buffer through the host's mapping of it. */
  pkvm_stacktrace_load(idx: number): bigint {
    return this.mem.read64('host', pkvmStacktraceKernVa(this.layout) + BigInt(idx) * 8n);
  }

  /** Protected mode: prints the saved entries, at most N of them, stopping at a 0. */
  pkvm_dump_backtrace(hyp_offset: bigint): void {
    const size = this.layout.stacktrace_entries;
    this.kvm_nvhe_dump_backtrace_start();
    for (let i = 0; i < size; i++) {
      const where = this.pkvm_stacktrace_load(i);
      if (!where) break;
      this.kvm_nvhe_dump_backtrace_entry(hyp_offset, where);
    }
    this.kvm_nvhe_dump_backtrace_end();
  }

  /** Non-protected mode: the host unwinds the hyp stacks itself. */
  hyp_dump_backtrace(hyp_offset: bigint): void {
    const info = this.kvm_stacktrace_info;
    const stacks = [this.stackinfo_get_overflow_kern_va(), this.stackinfo_get_hyp_kern_va()];
    const state = this.kvm_nvhe_unwind_init(stacks, info.fp, info.pc);
    this.kvm_nvhe_dump_backtrace_start();
    this.unwind(
      state,
      (where) => this.kvm_nvhe_dump_backtrace_entry(hyp_offset, where),
      (s) => this.host_unwind_next(s),
    );
    this.kvm_nvhe_dump_backtrace_end();
  }

  kvm_nvhe_dump_backtrace(hyp_offset: bigint): void {
    if (this.opts.protected) this.pkvm_dump_backtrace(hyp_offset);
    else this.hyp_dump_backtrace(hyp_offset);
  }

  // ---- host (arch/arm64/kvm/handle_exit.c) ----

  /**
   * The host's hyp panic handler. hyp_offset turns a hyp VA into the kernel image's link-time
   * address: elr_in_kimg - kaslr_offset - elr_virt. (Our panics are EL2 data aborts, never BUG()s.)
   */
  nvhe_hyp_panic_handler(exit: HypPanicExit): void {
    const elr_in_kimg = physToKimg(this.layout, exit.elr_phys);
    const hyp_offset = u64(elr_in_kimg - this.layout.kaslr_offset - exit.elr_virt);
    const panic_addr = u64(exit.elr_virt + hyp_offset);
    this.kvm_err(`nVHE hyp panic at: [<${hex016(panic_addr)}>] ${this.kallsyms.sprint_backtrace(this.kvm_symbol_address(panic_addr))}!`);
    this.kvm_nvhe_dump_backtrace(hyp_offset);
  }
}

/** Hyp VA range of the hyp stack page and of the overflow stack (for checkers and generators). */
export const nvheStacks = (l: NvheLayout): { readonly hyp: readonly [bigint, bigint]; readonly overflow: readonly [bigint, bigint] } => ({
  hyp: [hypStackBase(l), l.stack_hyp_va],
  overflow: [overflowStackBase(l), overflowStackBase(l) + BigInt(OVERFLOW_STACK_SIZE)],
});
