// One simulated CPU running hyp code at EL2, just enough to build real call stacks: every call's
// prologue pushes a frame record (fp, lr) at the bottom of its frame, an overflow into the guard page
// faults, and the exception vector detects it the way host.S does and panics on the overflow stack.
import seedrandom from 'seedrandom';
import type { HypPanicExit, NvheStacktrace } from './stacktrace';
import {
  OVERFLOW_STACK_SIZE,
  hostCtxtHypVa,
  hypPa,
  hypStackBase,
  hypTextVa,
  overflowStackBase,
  type NvheLayout,
} from './stacktrace-layout';
import { MemoryFault, StackMemory, u64 } from './stacktrace-memory';
import { POOL_FUNCTIONS, hypFunction, type HypFunction } from './symbols';

export type StackName = 'hyp' | 'overflow';

/** A frame record pushed by a prologue: whose, where, on which stack. */
export interface PushedRecord {
  readonly fn: string;
  readonly addr: bigint;
  readonly stack: StackName;
}

/** Where hyp_panic stands when it is about to save the backtrace. */
export interface PanicPoint {
  /** hyp_panic's own frame (__builtin_frame_address(0)) and pc (_THIS_IP_). */
  readonly fp: bigint;
  readonly pc: bigint;
  /** The hyp stack overflowed (the panic went through hyp_panic_bad_stack on the overflow stack). */
  readonly overflow: boolean;
  /** The call stack when the abort was taken, outermost first; the last one took it. */
  readonly call_stack: readonly string[];
  /** The abort was taken in that function's prologue (its frame record was never written). */
  readonly in_prologue: boolean;
}

/** _THIS_IP_ in hyp_panic: where it calls kvm_nvhe_prepare_backtrace (the sample's hyp_panic+0xac). */
const HYP_PANIC_THIS_IP = 0xac;

/** The memory of one CPU: its hyp stack page and its EL2 per-CPU area, and who maps them where. */
export interface NvheCpuMemory {
  readonly mem: StackMemory;
  readonly hyp_stack_page: Uint8Array;
  readonly percpu: Uint8Array;
}

/**
 * EL2 maps the stack page (not the guard page below it) and the per-CPU area. The host maps the
 * per-CPU area, and in non-protected mode also the hyp stack page (kvm_arm_hyp_stack_page); pKVM
 * keeps hyp's stack from the host.
 */
export function nvheCpuMemory(l: NvheLayout, isProtected: boolean): NvheCpuMemory {
  const mem = new StackMemory();
  const hyp_stack_page = new Uint8Array(l.page_size);
  const percpu = new Uint8Array(l.percpu_size);
  mem.map('el2', hypStackBase(l), hyp_stack_page);
  mem.map('el2', l.percpu_hyp_va, percpu);
  if (!isProtected) mem.map('host', l.kvm_arm_hyp_stack_page, hyp_stack_page);
  mem.map('host', l.percpu_kern_va, percpu);
  return { mem, hyp_stack_page, percpu };
}

export class NvheCpu {
  sp = 0n;
  /** x29 (fp) and x30 (lr). x30 holds plain addresses; prologues sign it when they store it. */
  x29 = 0n;
  x30 = 0n;
  elr_el2 = 0n;
  readonly call_stack: string[] = [];
  readonly records: PushedRecord[] = [];
  panic: PanicPoint | null = null;
  private readonly rng: seedrandom.PRNG;

  readonly mem: StackMemory;

  constructor(
    readonly layout: NvheLayout,
    readonly memory: NvheCpuMemory,
    readonly st: NvheStacktrace,
  ) {
    this.mem = memory.mem;
    this.rng = seedrandom(layout.contents_seed);
  }

  private text(f: HypFunction, off: number): bigint {
    return hypTextVa(this.layout, f.link + BigInt(off));
  }

  private random64(): bigint {
    return (BigInt(this.rng.int32() >>> 0) << 32n) | BigInt(this.rng.int32() >>> 0);
  }

  /** Pointer authentication (paciasp): a code over lr and the entry sp, in bits [54:48] of lr. */
  sign(lr: bigint, modifier: bigint): bigint {
    if (this.layout.pac_key === 0) return lr;
    let h = Number(lr & 0xffffffffn) ^ Number(modifier & 0xffffffffn) ^ this.layout.pac_key;
    h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
    h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
    return lr | (BigInt((h ^ (h >>> 16)) & 0x7f) << 48n);
  }

  /**
   * What earlier, deeper hypercalls left on the stack page: stale frame records, each pointing a
   * little higher, and stray words between them. The per-CPU variables around the overflow stack and
   * the stacktrace buffer hold live data (never zero).
   */
  fill_stale_memory(): void {
    const base = hypStackBase(this.layout);
    const page = new DataView(this.memory.hyp_stack_page.buffer);
    const P = this.layout.page_size;
    for (let off = 0; off + 16 <= P; ) {
      const stride = 16 * (1 + Math.floor(this.rng() * 6));
      const f = POOL_FUNCTIONS[Math.floor(this.rng() * POOL_FUNCTIONS.length)];
      const caller = base + BigInt(off + stride);
      page.setBigUint64(off, caller, true);
      page.setBigUint64(off + 8, this.sign(this.text(f, f.ret), caller), true);
      for (let w = off + 16; w < off + stride && w < P; w += 8) if (this.rng() < 0.25) page.setBigUint64(w, this.random64(), true);
      off += stride;
    }
    const percpu = new DataView(this.memory.percpu.buffer);
    const live = (from: number, to: number) => {
      for (let o = from; o + 8 <= to; o += 8) percpu.setBigUint64(o, this.random64() | 1n, true);
    };
    live(0, this.layout.overflow_stack_off);
    live(this.layout.host_ctxt_off, this.layout.percpu_size);
  }

  get current(): HypFunction {
    return hypFunction(this.call_stack[this.call_stack.length - 1]);
  }

  /** Entry from the host (host.S): an empty hyp stack, and the host context pointer in x29. */
  __host_exit(): void {
    this.sp = this.layout.stack_hyp_va;
    this.x29 = hostCtxtHypVa(this.layout);
    this.call_stack.push('__host_exit');
  }

  /** `bl name` from the current function. False if the callee's prologue faulted (the CPU panicked). */
  bl(name: string): boolean {
    if (this.panic) throw new Error('hyp has panicked');
    const caller = this.current;
    this.x30 = this.text(caller, caller.ret);
    return this.enter(hypFunction(name));
  }

  /** The prologue: allocate the frame, store (fp, lr) at its bottom, point fp at it. */
  private enter(f: HypFunction): boolean {
    this.call_stack.push(f.name);
    const entry_sp = this.sp;
    this.sp = u64(this.sp - BigInt(f.frame));
    try {
      this.mem.write64('el2', this.sp, this.x29);
      this.mem.write64('el2', this.sp + 8n, this.sign(this.x30, entry_sp));
    } catch (e) {
      if (!(e instanceof MemoryFault)) throw e;
      this.invalid_host_el2_vect(this.text(f, f.store), true);
      return false;
    }
    const [lo, hi] = [hypStackBase(this.layout), this.layout.stack_hyp_va];
    this.records.push({ fn: f.name, addr: this.sp, stack: this.sp >= lo && this.sp < hi ? 'hyp' : 'overflow' });
    this.x29 = this.sp;
    return true;
  }

  /** A data abort in the current function's body, after its last call returned (x30 still points there). */
  data_abort(): void {
    if (this.panic) throw new Error('hyp has panicked');
    const f = this.current;
    this.x30 = this.text(f, f.ret);
    this.invalid_host_el2_vect(this.text(f, f.fault), false);
  }

  /**
   * The EL2 exception vector (invalid_host_el2_vect). Hyp stacks are aligned so that the PAGE_SHIFT
   * bit of SP is set on the stack page and clear on the guard page below it: a clear bit means the
   * stack overflowed, so SP moves to the top of the overflow stack and hyp_panic_bad_stack runs;
   * otherwise it branches straight to hyp_panic. Both are branches: x29 and x30 reach them intact.
   */
  private invalid_host_el2_vect(elr: bigint, in_prologue: boolean): void {
    this.elr_el2 = elr;
    const call_stack = [...this.call_stack];
    const overflow = ((this.sp >> BigInt(this.layout.page_shift)) & 1n) === 0n;
    if (overflow) {
      this.sp = overflowStackBase(this.layout) + BigInt(OVERFLOW_STACK_SIZE);
      const bad = hypFunction('hyp_panic_bad_stack');
      if (!this.enter(bad)) return;
      this.x30 = this.text(bad, bad.ret);
    }
    const hyp_panic = hypFunction('hyp_panic');
    if (!this.enter(hyp_panic)) return;
    this.panic = { fp: this.x29, pc: this.text(hyp_panic, HYP_PANIC_THIS_IP), overflow, call_stack, in_prologue };
  }

  /** The rest of hyp_panic: save the backtrace, then __hyp_do_panic hands the fault to the host. */
  hyp_panic_tail(): HypPanicExit {
    if (!this.panic) throw new Error('hyp has not panicked');
    this.st.kvm_nvhe_prepare_backtrace(this.panic.fp, this.panic.pc);
    return { elr_virt: this.elr_el2, elr_phys: hypPa(this.elr_el2) };
  }
}
