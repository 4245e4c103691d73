// The arm64 frame-record unwinder shared by EL2 and the host (arch/arm64/include/asm/stacktrace/common.h,
// 6.12 lines 14-157; docs/semantics.md §9). A frame record is two 64-bit words at fp: the caller's fp,
// then the return address (lr). Stacks grow down, so walking fp -> [fp] goes from callee to caller,
// towards higher addresses. The walk "consumes" each stack: after a record is read, the current
// stack's low bound moves to the record's end, so the next record on that stack must start at least
// 16 bytes higher, and a stack once entered is removed from the list, so it is never entered again.
//
// 6.13+ (seen in a later tree's copy of the file; 6.16 assumed the same) splits the same steps into
// unwind_find_stack() and a void unwind_consume_stack(); what a walk accepts is unchanged, so there
// is one implementation for both versions we model.
import { u64 } from './stacktrace-memory';

/** struct stack_info: a stack's bounds [low, high); low = 0 is no stack (stackinfo_get_unknown). */
export interface StackInfo {
  low: bigint;
  high: bigint;
}

/**
 * struct unwind_state: the current fp and pc, the stack currently being unwound (its low bound is
 * the end of the last record consumed), and the stacks not yet entered (an entered one is zeroed).
 */
export interface UnwindState {
  fp: bigint;
  pc: bigint;
  stack: StackInfo;
  readonly stacks: StackInfo[];
  readonly nr_stacks: number;
}

/** stack_trace_consume_fn: takes one pc; false stops the unwind. */
export type ConsumeFn = (where: bigint) => boolean;

/** READ_ONCE() of one word in the reader's address space. */
export type ReadWord = (addr: bigint) => bigint;

export const EINVAL = 22;

/** The unwinder core; EL2 and the host say which stacks there are and how to read them. */
export class FrameRecordUnwinder {
  /** stackinfo_get_unknown() (common.h:38-44). */
  stackinfo_get_unknown(): StackInfo {
    return { low: 0n, high: 0n };
  }

  /** stackinfo_on_stack() (46-56): [sp, sp + size) lies inside [low, high), with no wrap past 2^64. */
  stackinfo_on_stack(info: StackInfo, sp: bigint, size: bigint): boolean {
    if (!info.low) return false;
    const end = u64(sp + size);
    return !(sp < info.low || end < sp || end > info.high);
  }

  /**
   * The caller's `struct unwind_state state = { .stacks = stacks, .nr_stacks = ... }`, then
   * kvm_nvhe_unwind_init() (nvhe.h:30-38) and unwind_init_common() (common.h:58-61): no current stack.
   */
  kvm_nvhe_unwind_init(stacks: StackInfo[], fp: bigint, pc: bigint): UnwindState {
    return { fp, pc, stack: this.stackinfo_get_unknown(), stacks, nr_stacks: stacks.length };
  }

  /** unwind_find_next_stack() (63-75): the index of the first listed stack holding the object. */
  unwind_find_next_stack(state: UnwindState, sp: bigint, size: bigint): number | null {
    for (let i = 0; i < state.nr_stacks; i++) if (this.stackinfo_on_stack(state.stacks[i], sp, size)) return i;
    return null;
  }

  /**
   * unwind_consume_stack() (88-128): the object must lie above what the current stack has consumed,
   * or on a stack not yet entered, which becomes current and leaves the list (transitions are
   * one-way, in any order). Then the current stack starts just above the object.
   */
  unwind_consume_stack(state: UnwindState, sp: bigint, size: bigint): number {
    if (!this.stackinfo_on_stack(state.stack, sp, size)) {
      const next = this.unwind_find_next_stack(state, sp, size);
      if (next === null) return -EINVAL;
      state.stack = { ...state.stacks[next] };
      state.stacks[next] = this.stackinfo_get_unknown();
    }
    state.stack.low = u64(sp + size);
    return 0;
  }

  /** unwind_next_frame_record() (137-157): one step from state.fp to the caller's record, or -EINVAL. */
  unwind_next_frame_record(state: UnwindState, read: ReadWord): number {
    const fp = state.fp;
    if (fp & 7n) return -EINVAL;
    const err = this.unwind_consume_stack(state, fp, 16n);
    if (err) return err;
    state.fp = read(fp);
    state.pc = read(fp + 8n);
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
