// The simulated machine: which physical frames are memory (everything else is MMIO), and which
// kernel version the model and hyp/ follow.
import type { KernelVersion } from './kernel';

/** A memory region as `[first pfn, number of pages]`. */
export type MemoryRegion = readonly [number, number];

export interface MachineConfig {
  readonly memory: readonly MemoryRegion[];
  /** Stage-2 granule. Only 4096 is simulated for page tables. */
  readonly pageSize: number;
  /** The pKVM version modelled (types/kernel.ts); absent means DEFAULT_KERNEL. */
  readonly kernel?: KernelVersion;
  /**
   * Simulation only: the most pins a page holds, in place of the kernel's u16 limit (65,535,
   * `KernelSemantics.maxPins`), so that tests reach "full" and "one past full" in a few calls. Model
   * and hyp read it through `pinLimit` (types/kernel.ts); the kernel target refuses any other value.
   */
  readonly pinLimit?: number;
}

/** 40-bit physical address space with 4 KiB pages: pfns below 2^28. */
export const PA_BITS = 40;
export const PAGE_SHIFT = 12;
export const PA_PFNS = 2 ** (PA_BITS - PAGE_SHIFT);
/** Pages per 2 MiB block, the size of a huge guest share. */
export const PTRS_PER_TABLE = 512;

/** 16 MiB of memory at 1 GiB (PA 0x40000000), as in the CONTRACT's example trace. */
export const DEFAULT_CONFIG: MachineConfig = { memory: [[0x40000, 4096]], pageSize: 4096 };

/** Guest IPA space: 40 bits, like the host's. */
export const GUEST_IPA_PFNS = PA_PFNS;
/** Pages a guest's stage-2 PGD takes (40-bit IPA starts at level 1 with two concatenated pages). */
export const GUEST_PGD_PAGES = 2;
/** Minimum nr_pages of __pkvm_init_vm: one metadata page plus the guest PGD. */
export const VM_MIN_PAGES = 1 + GUEST_PGD_PAGES;
/** First VM handle; handles are this plus the lowest free slot. */
export const VM_HANDLE_OFFSET = 0x1000;
/** VM slots hyp has; __pkvm_init_vm fails with -ENOMEM when all are taken. */
export const MAX_VMS = 255;
/** Capacity of the host fault log (SEMANTICS §6). */
export const FAULT_LOG_SIZE = 128;
/**
 * vCPUs of a VM made by our `__pkvm_init_vm` (which stands for the kernel's init_vm plus one
 * `__pkvm_init_vcpu` per vCPU, docs/semantics.md §7): `__pkvm_vcpu_load` of an index at or past this
 * loads nothing.
 */
export const VM_VCPUS = 2;
