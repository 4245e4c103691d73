// Which pKVM the model and hyp/ are: a named Linux version, and the one table of what differs between
// the versions we model (docs/semantics.md sections 1, 2, 4 and 11). The model (model/) and the
// simulation (hyp/) read this table; neither tests the version by name.
import { GUEST_ATTRIBUTE_CALLS, GUEST_SHARE_CALLS, VCPU_CALLS, type CallName } from './calls';
import type { MachineConfig } from './config';
import { EINVAL, ERANGE } from './errno';

export type KernelVersion = '6.12' | '6.16';
export const KERNEL_VERSIONS: readonly KernelVersion[] = ['6.12', '6.16'];
/** What a machine without `kernel` (and a trace without `config.kernel`) models. */
export const DEFAULT_KERNEL: KernelVersion = '6.16';

/**
 * Results that are not errnos. Calls return 0, a VM handle (> 0), a negative errno (> -4096), or one
 * of these, which lie outside both ranges. Traces spell them "panic" and "not-supported".
 */
/** The hypervisor panics (a BUG_ON or WARN_ON at EL2 takes the host down: docs/semantics.md §2). */
export const HYP_PANIC = -0x10000;
/**
 * handle_host_hcall answers a call the version's host_hcall[] does not have with x0 =
 * SMCCC_RET_NOT_SUPPORTED (hyp-main.c:456-468, docs/semantics.md §1.1). Its value there is -1, which
 * is also -EPERM, so it gets a value of its own here.
 */
export const NOT_SUPPORTED = -0x10001;

/** Names of the results that are not errnos, as traces and reports print them. */
export const OUTCOME_NAMES: Readonly<Record<number, string>> = { [HYP_PANIC]: 'panic', [NOT_SUPPORTED]: 'not-supported' };

/** Page numbers of a u64 address: the kernel computes `pfn << PAGE_SHIFT` in u64, so pfns alias modulo 2^52. */
export const U64_PFNS = 2 ** 52;

/**
 * How a host range `[pfn, pfn + nr_pages)` is checked before the states of its pages
 * (docs/semantics.md §4). Addresses are u64: `addr = pfn << 12`, `end = addr + (nr_pages << 12)`,
 * both modulo 2^64.
 */
export interface RangeRule {
  /**
   * The kernel function that checks a host range: the page-table walk (which refuses addresses past
   * its input range and reads the state of each leaf it enters) or check_range_allowed_memory (which
   * compares with the memblock regions). The fields below are what it does to the model.
   */
  readonly check: 'kvm_pgtable_walk' | 'check_range_allowed_memory';
  /**
   * A range whose start or end address lies past the 40-bit PA space returns this errno, or nothing
   * refuses it (null): then it is MMIO, in the gap after the last region that runs to ULONG_MAX.
   */
  readonly beyondPa: number | null;
  /**
   * A range that does not lie in one memory region or one MMIO gap: 'each-page' = nothing refuses it
   * as a whole; its pages are checked one by one and a page outside memory reads NOPAGE, which the
   * first state check of every call refuses (-EPERM); or the errno the range check returns.
   */
  readonly mixed: 'each-page' | number;
  /**
   * An empty range (nr_pages = 0) or one whose end wraps past 2^64: 'nothing' = no page is checked or
   * changed, the call returns 0 (once `beyondPa` let it through); 'span' = the same check as for every other
   * range, on `end - 1` (so an empty range at the first page of a region or gap is `mixed`).
   */
  readonly emptyOrWrapping: 'nothing' | 'span';
  /**
   * The hyp-side state check of a range walks hyp's stage-1 with the same limits (true; the simulation
   * maps hyp VA == PA), or reads the vmemmap page by page with no range check at all (false). It comes
   * first only in __pkvm_hyp_donate_host.
   */
  readonly hypWalk: boolean;
  /**
   * __pkvm_hyp_donate_host of a range whose end wraps: the checks visit nothing and pass, then
   * hyp_initiate_donation's kvm_pgtable_hyp_unmap unmaps nothing, its size check fails with -EFAULT,
   * and do_donate's WARN_ON panics the hypervisor (true); or the range check refuses it first (false).
   */
  readonly wrappingUnmapPanics: boolean;
}

/** What differs between the versions, each entry citing docs/semantics.md and the kernel source. */
export interface KernelSemantics {
  readonly version: KernelVersion;
  /**
   * Calls of our vocabulary the version does not have: the result is NOT_SUPPORTED and nothing
   * changes (docs/semantics.md §1).
   */
  readonly absent: readonly CallName[];
  readonly range: RangeRule;
  /**
   * The most pins a page can hold: `struct hyp_page`'s refcount is a u16 and hyp_page_ref_inc
   * BUG_ONs at USHRT_MAX (hyp/include/nvhe/memory.h:54), so the next pin is HYP_PANIC. Unpinning a
   * page whose count is 0 is HYP_PANIC too (hyp_page_ref_dec's BUG_ON, memory.h:60), in both versions.
   */
  readonly maxPins: number;
}

const USHRT_MAX = 0xffff;

export const KERNELS: Readonly<Record<KernelVersion, KernelSemantics>> = {
  // Linux 6.12 (Debian 6.12.117) with CONFIG_NVHE_EL2_DEBUG=y, as our kernel target is built.
  '6.12': {
    version: '6.12',
    // hyp-main.c:405-433: host_hcall[] has no guest memory calls and no vCPU load/put; docs/semantics.md §1.
    absent: [...GUEST_SHARE_CALLS, ...GUEST_ATTRIBUTE_CALLS, ...VCPU_CALLS],
    range: {
      // __host_check_page_state_range -> check_page_state_range -> kvm_pgtable_walk (mem_protect.c:595-628).
      check: 'kvm_pgtable_walk',
      // _kvm_pgtable_walk: `addr > BIT(ia_bits) || end > BIT(ia_bits)` is -ERANGE (hyp/pgtable.c:265-266).
      beyondPa: -ERANGE,
      // host_get_page_state: outside memory is NOPAGE (mem_protect.c:607-616), checked per walked leaf.
      // A zero block entry spanning memory and MMIO is entered once, at a memory address: the kernel
      // then lets the range through; model and hyp check every page (deviation, §10 item 2).
      mixed: 'each-page',
      // The walk loops while addr < end (pgtable.c:291): an empty or wrapped range visits nothing,
      // and the effect's walks visit nothing either.
      emptyOrWrapping: 'nothing',
      // __hyp_check_page_state_range walks pkvm_pgtable (mem_protect.c:726-734).
      hypWalk: true,
      // hyp_initiate_donation (mem_protect.c:748-757) -> do_donate's WARN_ON (mem_protect.c:1089):
      // found by the kernel target, `nVHE hyp BUG at: arch/arm64/kvm/hyp/nvhe/mem_protect.c:1089!`.
      wrappingUnmapPanics: true,
    },
    maxPins: USHRT_MAX,
  },
  // Linux 6.16: the vmemmap page states and check_range_allowed_memory (docs/semantics.md §0, §4).
  '6.16': {
    version: '6.16',
    absent: [],
    range: {
      // __host_check_page_state_range starts with check_range_allowed_memory(addr, addr + size).
      check: 'check_range_allowed_memory',
      // No walk: check_range_allowed_memory only compares with the memblock regions, and
      // find_mem_range's last gap runs to ULONG_MAX.
      beyondPa: null,
      // check_range_allowed_memory: `!is_in_mem_range(end - 1, &range)` is -EINVAL; then MMIO -EPERM.
      mixed: -EINVAL,
      // The same check for every range: end - 1 computed in u64.
      emptyOrWrapping: 'span',
      // __hyp_check_page_state_range reads get_hyp_state(hyp_phys_to_page(phys)) page by page.
      hypWalk: false,
      // check_range_allowed_memory refuses a wrapping range (-EINVAL) before anything is unmapped.
      wrappingUnmapPanics: false,
    },
    maxPins: USHRT_MAX,
  },
};

/** The table entry of a machine's kernel (DEFAULT_KERNEL when it names none). */
export const kernelOf = (config: MachineConfig): KernelSemantics => KERNELS[config.kernel ?? DEFAULT_KERNEL];

/** The most pins a page of this machine holds: its simulation-only `pinLimit`, else the kernel's u16 limit. */
export const pinLimit = (config: MachineConfig): number => config.pinLimit ?? kernelOf(config).maxPins;

/** Whether `v` names a modelled version. */
export const isKernelVersion = (v: unknown): v is KernelVersion => typeof v === 'string' && (KERNEL_VERSIONS as readonly string[]).includes(v);

/**
 * A register argument the handler declares 32 bits wide (`pkvm_handle_t`, `unsigned int vcpu_idx`):
 * the kernel sees the low 32 bits of what the host passed.
 */
export const u32Arg = (x: number): number => x % 2 ** 32;
