// Historical nVHE unwinder defects (docs/semantics.md §9), and one in the v4/v5 format's lines, each
// re-introduced into one NvheStacktrace instance by replacing one small method. The correct code in
// hyp/ knows nothing about them.
import { EINVAL } from '../../hyp/stacktrace-common';
import type { NvheStacktrace } from '../../hyp/stacktrace';

export interface UnwinderBug {
  readonly id: string;
  readonly description: string;
  readonly suite: 'unwinder';
  inject(target: NvheStacktrace): void;
}

/**
 * unwind_consume_stack() as the kernel has it (hyp/stacktrace-common.ts), with its two updates as
 * parameters: whether a stack entered leaves the list, and the current stack's new low bound after a
 * record (null: left as it was).
 */
function consumeStack(t: NvheStacktrace, o: { readonly removeEntered: boolean; readonly low: (sp: bigint, size: bigint) => bigint | null }): NvheStacktrace['unwind_consume_stack'] {
  return (state, sp, size) => {
    if (!t.stackinfo_on_stack(state.stack, sp, size)) {
      const next = t.unwind_find_next_stack(state, sp, size);
      if (next === null) return -EINVAL;
      state.stack = { ...state.stacks[next] };
      if (o.removeEntered) state.stacks[next] = t.stackinfo_get_unknown();
    }
    const low = o.low(sp, size);
    if (low !== null) state.stack.low = low;
    return 0;
  };
}

export const UNWINDER_BUGS: readonly UnwinderBug[] = [
  {
    id: 'unwind-no-stacks-done',
    description: 'the unwinder never removes a stack it entered from the list (v6.0: never marks it in stacks_done), so a record may lead back into a stack already unwound',
    suite: 'unwinder',
    inject(t) {
      t.unwind_consume_stack = consumeStack(t, { removeEntered: false, low: (sp, size) => sp + size });
    },
  },
  {
    id: 'unwind-no-monotonic-fp',
    description: 'the unwinder never raises the current stack\'s low bound past a record it read, so a record at or below the previous one on the same stack is accepted (cyclic records never end)',
    suite: 'unwinder',
    inject(t) {
      t.unwind_consume_stack = consumeStack(t, { removeEntered: true, low: () => null });
    },
  },
  {
    id: 'unwind-overlapping-records',
    description: 'the unwinder only requires a record above the previous one on the same stack (v6.0-6.1: fp > prev_fp), not past its end, so overlapping records are accepted',
    suite: 'unwinder',
    inject(t) {
      // Only this record's first byte is consumed: the next one may start 8 bytes higher.
      t.unwind_consume_stack = consumeStack(t, { removeEntered: true, low: (sp) => sp + 1n });
    },
  },
  {
    id: 'stacktrace-no-terminator-slot',
    description: 'the EL2 saver fills all N entries of pkvm_stacktrace, writing its terminating 0 past the buffer',
    suite: 'unwinder',
    inject(t) {
      t.pkvm_save_backtrace_entry = (idx, where) => {
        if (idx.value > t.layout.stacktrace_entries - 1) return false;
        t.pkvm_stacktrace_store(idx.value, where);
        idx.value++;
        t.pkvm_stacktrace_store(idx.value, 0n);
        return true;
      };
    },
  },
  {
    id: 'symbolize-without-kaslr',
    description: 'the host looks hyp addresses up in kallsyms without adding kaslr_offset (the pre-v5 symbolization)',
    suite: 'unwinder',
    inject(t) {
      t.kvm_symbol_address = (addr) => addr;
    },
  },
  {
    id: 'host-reader-trusts-terminator',
    description: 'the host reads pkvm_stacktrace until it finds a 0, trusting EL2 to have terminated it within N entries',
    suite: 'unwinder',
    inject(t) {
      t.pkvm_dump_backtrace = (hyp_offset) => {
        t.kvm_nvhe_dump_backtrace_start();
        for (let i = 0; ; i++) {
          const where = t.pkvm_stacktrace_load(i);
          if (!where) break;
          t.kvm_nvhe_dump_backtrace_entry(hyp_offset, where);
        }
        t.kvm_nvhe_dump_backtrace_end();
      };
    },
  },
  {
    id: 'v5-footer-names-protected',
    description: 'in the v4/v5 format the host ends every trace with the protected footer ("---- End of Protected nVHE HYP call trace ----"), in non-protected mode too; upstream\'s lines are right',
    suite: 'unwinder',
    inject(t) {
      const end = t.kvm_nvhe_dump_backtrace_end.bind(t);
      t.kvm_nvhe_dump_backtrace_end = () => (t.opts.format === 'v5' ? t.kvm_err('---- End of Protected nVHE HYP call trace ----') : end());
    },
  },
];

export const findUnwinderBug = (id: string): UnwinderBug | undefined => UNWINDER_BUGS.find((b) => b.id === id);
