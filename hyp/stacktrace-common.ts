// The arm64 frame-record unwinder shared by EL2 and the host (asm/stacktrace/common.h, as of v6.0).
// A frame record is two 64-bit words at fp: the caller's fp, then the return address (lr). Stacks
// grow down, so walking fp -> [fp] goes from callee to caller, towards higher addresses.
import { u64 } from './stacktrace-memory';

/** enum stack_type, restricted to what the nVHE hypervisor has. */
export type StackType = 'STACK_TYPE_UNKNOWN' | 'STACK_TYPE_HYP' | 'STACK_TYPE_OVERFLOW';

/** struct stack_info: a stack's bounds [low, high) and its type. */
export interface StackInfo {
  readonly low: bigint;
  readonly high: bigint;
  readonly type: StackType;
}

/**
 * struct unwind_state: the current fp and pc, the stacks already left (which it is never valid to
 * unwind back into), and the previous record's fp and stack (records on one stack strictly rise).
 */
export interface UnwindState {
  fp: bigint;
  pc: bigint;
  readonly stacks_done: Set<StackType>;
  prev_fp: bigint;
  prev_type: StackType;
}

/** stack_trace_consume_fn: takes one pc; false stops the unwind. */
export type ConsumeFn = (where: bigint) => boolean;

/** Finds the stack that holds [sp, sp + size), if any (on_accessible_stack). */
export type OnAccessibleStack = (sp: bigint, size: bigint) => StackInfo | null;

/** Reads one word of a frame record at a stack address, translating it first when needed. */
export type RecordReader = (fp: bigint, info: StackInfo) => { readonly fp: bigint; readonly pc: bigint } | null;

export const EINVAL = 22;

/** The unwinder core; EL2 and the host plug in where the stacks are and how to read them. */
export class FrameRecordUnwinder {
  /** on_stack(): [sp, sp + size) lies inside [low, high), with no wrap-around past 2^64. */
  on_stack(sp: bigint, size: bigint, low: bigint, high: bigint): boolean {
    if (!low) return false;
    const end = u64(sp + size);
    return !(sp < low || end < sp || end > high);
  }

  /** kvm_nvhe_unwind_init(): start at (fp, pc) with no stack visited yet. */
  kvm_nvhe_unwind_init(fp: bigint, pc: bigint): UnwindState {
    return { fp, pc, stacks_done: new Set(), prev_fp: 0n, prev_type: 'STACK_TYPE_UNKNOWN' };
  }

  /** test_bit(type, stacks_done). */
  stack_done(state: UnwindState, type: StackType): boolean {
    return state.stacks_done.has(type);
  }

  /** __set_bit(type, stacks_done): the unwind has left this stack for good. */
  mark_stack_done(state: UnwindState, type: StackType): void {
    state.stacks_done.add(type);
  }

  /** On one stack, each record must sit strictly above the previous one (fp > prev_fp). */
  frame_above_prev(state: UnwindState, fp: bigint): boolean {
    return fp > state.prev_fp;
  }

  /** unwind_next_common(): one step from state.fp to the caller's record, or -EINVAL. */
  unwind_next_common(state: UnwindState, on_accessible_stack: OnAccessibleStack, read_record: RecordReader): number {
    const fp = state.fp;
    if (fp & 7n) return -EINVAL;
    const info = on_accessible_stack(fp, 16n);
    if (!info) return -EINVAL;
    if (this.stack_done(state, info.type)) return -EINVAL;
    if (info.type === state.prev_type) {
      if (!this.frame_above_prev(state, fp)) return -EINVAL;
    } else {
      this.mark_stack_done(state, state.prev_type);
    }
    const record = read_record(fp, info);
    if (!record) return -EINVAL;
    state.fp = record.fp;
    state.pc = record.pc;
    state.prev_fp = fp;
    state.prev_type = info.type;
    return 0;
  }

  /** unwind(): hand over the current pc, step, repeat until a step fails or the consumer says stop. */
  unwind(state: UnwindState, consume_entry: ConsumeFn, unwind_next: (state: UnwindState) => number): void {
    for (;;) {
      if (!consume_entry(state.pc)) break;
      if (unwind_next(state) < 0) break;
    }
  }
}
