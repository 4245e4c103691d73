// Historical nVHE unwinder defects (SEMANTICS §7), each re-introduced into one NvheStacktrace
// instance by replacing one small method. The correct code in hyp/ knows nothing about them.
import type { UnwindState } from '../../hyp/stacktrace-common';
import type { NvheStacktrace } from '../../hyp/stacktrace';

export interface UnwinderBug {
  readonly id: string;
  readonly description: string;
  readonly suite: 'unwinder';
  inject(target: NvheStacktrace): void;
}

export const UNWINDER_BUGS: readonly UnwinderBug[] = [
  {
    id: 'unwind-no-stacks-done',
    description: 'the unwinder never marks a stack as left, so a record may lead back into a stack already unwound',
    suite: 'unwinder',
    inject(t) {
      t.mark_stack_done = () => {};
    },
  },
  {
    id: 'unwind-no-monotonic-fp',
    description: 'the unwinder accepts a record at or below the previous one on the same stack (cyclic records never end)',
    suite: 'unwinder',
    inject(t) {
      t.frame_above_prev = (_state: UnwindState, _fp: bigint) => true;
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
];

export const findUnwinderBug = (id: string): UnwinderBug | undefined => UNWINDER_BUGS.find((b) => b.id === id);
