// The call vocabulary as plain data (kernel names, SEMANTICS argument names). This is what the model
// and hyp execute; `vm` is already resolved to a number. Trace files and generators use the same
// names (see checker/vocabulary.ts for the decoder that produces these from untrusted input).

/** Guest permissions: a subset of R, W, X. */
export interface Prot {
  readonly r: boolean;
  readonly w: boolean;
  readonly x: boolean;
}

export interface RangeArgs {
  readonly pfn: number;
  readonly nr_pages: number;
}

/** Arguments of the host stage-2 snapshot: the descriptor fields the host prepares (SEMANTICS §5). */
export interface SnapshotArgs {
  /** Physical address of the descriptor page. */
  readonly desc: number;
  /** Physical address of the first PGD page of the copy, and how many pages it spans. */
  readonly pgd: number;
  readonly pgd_pages: number;
  /** Memcache pages (physical addresses) in list order, as the host links them. */
  readonly mc: readonly number[];
  /** The memcache's claimed `nr_pages`. */
  readonly mc_nr_pages: number;
  /** What the last memcache page links to (0 = end of list); lets a trace build a cyclic list. */
  readonly mc_tail: number;
  /** Physical address of the used-pages array and its size in pages. */
  readonly used: number;
  readonly num_used_pages: number;
  /** Initial `used_pages_indx` in the descriptor (must be 0). */
  readonly used_pages_indx: number;
}

/**
 * The VM of a call that acts on the loaded vCPU (docs/semantics.md §6.1): `null` is the kernel's call
 * as it is, on whatever vCPU the host loaded; a handle is the host's usual pattern, which loads vCPU 0
 * of that VM around the call when none is loaded (and is ignored when one is).
 */
export type LoadedVm = number | null;

export type UnwindMode = 'protected' | 'nonprotected';

/** The lines the host prints around the entries: upstream's, or the v4/v5 patch series' (hyp/stacktrace.ts). */
export type UnwindFormat = 'upstream' | 'v5';

/**
 * Words written over the simulated EL2 memory (a corruption). On a stack ('hyp' or 'overflow') they
 * are written after the call chain is built and before the unwind; on 'stacktrace' (the protected-mode
 * per-CPU pkvm_stacktrace buffer) after EL2 saved the trace and before the host reads it, as a
 * misbehaving EL2 would. Words that fall outside the target are dropped.
 */
export interface StackCorruption {
  readonly stack: 'hyp' | 'overflow' | 'stacktrace';
  /** Byte offset of the first word from the target's base. */
  readonly offset: number;
  /** The 64-bit value, as a hex string ("0x..."). */
  readonly value: string;
  /**
   * A pattern instead of one word: `count` words (default 1), word i at `offset + i * stride`
   * (stride in bytes, default 8) holding `value + i * step` (modulo 2^64, step default 0). Two such
   * patterns with stride 16 write a ladder of frame records.
   */
  readonly count?: number;
  readonly stride?: number;
  readonly step?: number;
}

/** Arguments of an unwinder scenario: build a hyp call chain, panic, unwind (SEMANTICS §7). */
export interface UnwindArgs {
  readonly scenario: string;
  readonly mode: UnwindMode;
  readonly page_size: number;
  readonly depth: number;
  readonly seed: number;
  readonly corrupt: readonly StackCorruption[];
  /** The format of the printed trace; absent means 'upstream' (a trace file names it only when it is not). */
  readonly format?: UnwindFormat;
}

export type Call =
  | { readonly call: '__pkvm_host_share_hyp'; readonly args: { readonly pfn: number } }
  | { readonly call: '__pkvm_host_unshare_hyp'; readonly args: { readonly pfn: number } }
  | { readonly call: '__pkvm_host_donate_hyp'; readonly args: RangeArgs }
  | { readonly call: '__pkvm_hyp_donate_host'; readonly args: RangeArgs }
  | { readonly call: '__pkvm_host_share_ffa'; readonly args: RangeArgs }
  | { readonly call: '__pkvm_host_unshare_ffa'; readonly args: RangeArgs }
  | { readonly call: 'hyp_pin_shared_mem'; readonly args: RangeArgs }
  | { readonly call: 'hyp_unpin_shared_mem'; readonly args: RangeArgs }
  | {
      readonly call: '__pkvm_host_share_guest';
      readonly args: { readonly pfn: number; readonly gfn: number; readonly nr_pages: number; readonly vm: LoadedVm; readonly prot: Prot };
    }
  | { readonly call: '__pkvm_host_unshare_guest'; readonly args: { readonly gfn: number; readonly nr_pages: number; readonly vm: number } }
  | { readonly call: '__pkvm_host_relax_perms_guest'; readonly args: { readonly gfn: number; readonly prot: Prot; readonly vm: LoadedVm } }
  | { readonly call: '__pkvm_host_wrprotect_guest'; readonly args: { readonly gfn: number; readonly nr_pages: number; readonly vm: number } }
  | {
      readonly call: '__pkvm_host_test_clear_young_guest';
      readonly args: { readonly gfn: number; readonly nr_pages: number; readonly mkold: boolean; readonly vm: number };
    }
  | { readonly call: '__pkvm_host_mkyoung_guest'; readonly args: { readonly gfn: number; readonly vm: LoadedVm } }
  | { readonly call: '__pkvm_vcpu_load'; readonly args: { readonly vm: number; readonly vcpu: number } }
  | { readonly call: '__pkvm_vcpu_put'; readonly args: Record<string, never> }
  | { readonly call: '__pkvm_init_vm'; readonly args: RangeArgs }
  | { readonly call: '__pkvm_teardown_vm'; readonly args: { readonly vm: number } }
  | { readonly call: 'host_access'; readonly args: { readonly pfn: number; readonly write: boolean } }
  | { readonly call: '__pkvm_host_stage2_snapshot'; readonly args: SnapshotArgs }
  | { readonly call: 'hyp_panic'; readonly args: UnwindArgs };

export type CallName = Call['call'];
export type ArgsOf<N extends CallName> = Extract<Call, { call: N }>['args'];

/** 6.16's guest share calls (absent in 6.12). */
export const GUEST_SHARE_CALLS = ['__pkvm_host_share_guest', '__pkvm_host_unshare_guest'] as const satisfies readonly CallName[];
/** 6.16's calls on the attributes of pages shared with guests (absent in 6.12). */
export const GUEST_ATTRIBUTE_CALLS = [
  '__pkvm_host_relax_perms_guest',
  '__pkvm_host_wrprotect_guest',
  '__pkvm_host_test_clear_young_guest',
  '__pkvm_host_mkyoung_guest',
] as const satisfies readonly CallName[];
/** 6.16's vCPU load and put, which the calls on the loaded vCPU act through (absent in 6.12). */
export const VCPU_CALLS = ['__pkvm_vcpu_load', '__pkvm_vcpu_put'] as const satisfies readonly CallName[];
