// Where everything the nVHE unwinder touches lives, for one CPU: the kernel image under KASLR, the
// hyp stack with its guard page, the per-CPU area (overflow stack, stacktrace buffer, host context),
// and the host's aliases of them. All of it is drawn from seedrandom, seeded by the scenario's seed.
import seedrandom from 'seedrandom';
import { KIMAGE_VADDR } from './symbols';

/** The overflow stack is 4 KiB whatever the page size (OVERFLOW_STACK_SIZE). */
export const OVERFLOW_STACK_SIZE = 4096;
/** Virtual address bits (vabits_actual); tags and pointer-authentication codes live above them. */
export const VA_BITS = 48n;
/** Start of the host's linear map, and the physical address it maps there (48-bit VA). */
export const PAGE_OFFSET = 0xffff000000000000n;
export const PHYS_OFFSET = 0x40000000n;
/** Hyp linear VAs are `tag << HYP_TAG_LSB | PA`. */
const HYP_TAG_LSB = 39n;

export const PAGE_SIZES = [4096, 16384, 65536] as const;
export type PageSize = (typeof PAGE_SIZES)[number];

/**
 * Bytes of the protected-mode stacktrace buffer: room for one entry per 16-byte frame record that
 * the two stacks could hold, plus one word for the terminating 0 (NVHE_STACKTRACE_SIZE).
 */
export const nvheStacktraceSize = (pageSize: number): number => (OVERFLOW_STACK_SIZE + pageSize) / 2 + 8;

/** Bytes of per-CPU variables placed after pkvm_stacktrace (kvm_host_data, among others). */
export const PERCPU_TAIL = 0x200;

export interface NvheLayout {
  readonly page_size: number;
  readonly page_shift: number;
  /** Entries of the pkvm_stacktrace buffer: NVHE_STACKTRACE_SIZE / 8. */
  readonly stacktrace_entries: number;
  /** kaslr_offset(): how far the running image sits above its link address. */
  readonly kaslr_offset: bigint;
  /** kimage_voffset: kernel image VA minus PA. */
  readonly kimage_voffset: bigint;
  /** PA of the image's first byte (KIMAGE_VADDR). */
  readonly image_pa: bigint;
  /** Tag of hyp linear VAs. */
  readonly hyp_va_tag: bigint;
  /** kvm_init_params.stack_hyp_va: the top of the hyp stack (its page is just below). */
  readonly stack_hyp_va: bigint;
  /** kvm_arm_hyp_stack_page: the host's kernel VA of the hyp stack page. */
  readonly kvm_arm_hyp_stack_page: bigint;
  /** The EL2 per-CPU area, at its hyp VA and at the host's kernel VA, and its size. */
  readonly percpu_hyp_va: bigint;
  readonly percpu_kern_va: bigint;
  readonly percpu_size: number;
  /** Byte offsets inside the per-CPU area. */
  readonly overflow_stack_off: number;
  readonly pkvm_stacktrace_off: number;
  readonly host_ctxt_off: number;
  /** Pointer-authentication key; 0 when the hyp signs no return addresses. */
  readonly pac_key: number;
  /** Seed of the memory contents (stale stack data). */
  readonly contents_seed: string;
}

export const PAGE_SHIFT: Readonly<Record<number, number>> = { 4096: 12, 16384: 14, 65536: 16 };

export function nvheLayout(seed: number, pageSize: number): NvheLayout {
  const page_shift = PAGE_SHIFT[pageSize];
  if (page_shift === undefined) throw new Error(`page size ${pageSize} is not 4K, 16K or 64K`);
  const rng = seedrandom(`nvhe-layout:${seed}:${pageSize}`);
  const int = (n: number): bigint => BigInt(Math.floor(rng() * n));
  const P = BigInt(pageSize);
  const image_pa = PHYS_OFFSET + int(64) * 0x200000n;
  const kaslr_offset = (1n + int(0xffff)) * 0x200000n;
  const hyp_va_tag = 1n + int(255);
  const hypLinear = (pa: bigint) => (hyp_va_tag << HYP_TAG_LSB) | pa;
  // The hyp stack lives in hyp's private VA range, two pages per CPU aligned to twice the page size:
  // an unmapped guard page, then the stack page (whose addresses all have the PAGE_SHIFT bit set).
  const privateBase = (hyp_va_tag << HYP_TAG_LSB) + (1n << 38n);
  const guard = privateBase + int(1024) * 2n * P;
  const stack_pa = 0x80000000n + int(0x4000) * P;
  const percpu_pa = 0xc0000000n + int(0x4000) * 0x10000n;
  const overflow_stack_off = Number(int(64)) * 16;
  const pkvm_stacktrace_off = overflow_stack_off + OVERFLOW_STACK_SIZE;
  const host_ctxt_off = pkvm_stacktrace_off + nvheStacktraceSize(pageSize);
  return {
    page_size: pageSize,
    page_shift,
    stacktrace_entries: nvheStacktraceSize(pageSize) / 8,
    kaslr_offset,
    kimage_voffset: KIMAGE_VADDR + kaslr_offset - image_pa,
    image_pa,
    hyp_va_tag,
    stack_hyp_va: guard + 2n * P,
    kvm_arm_hyp_stack_page: PAGE_OFFSET + (stack_pa - PHYS_OFFSET),
    percpu_hyp_va: hypLinear(percpu_pa),
    percpu_kern_va: PAGE_OFFSET + (percpu_pa - PHYS_OFFSET),
    percpu_size: host_ctxt_off + PERCPU_TAIL,
    overflow_stack_off,
    pkvm_stacktrace_off,
    host_ctxt_off,
    pac_key: rng() < 0.5 ? 0 : 1 + Math.floor(rng() * 0x7ffffffe),
    contents_seed: `nvhe-contents:${seed}:${pageSize}`,
  };
}

/** Lowest address of the hyp stack page (stack_base). */
export const hypStackBase = (l: NvheLayout): bigint => l.stack_hyp_va - BigInt(l.page_size);
/** Hyp VA of the overflow stack's lowest byte. */
export const overflowStackBase = (l: NvheLayout): bigint => l.percpu_hyp_va + BigInt(l.overflow_stack_off);
/** Hyp VA of the pkvm_stacktrace buffer, and its host kernel VA. */
export const pkvmStacktraceHypVa = (l: NvheLayout): bigint => l.percpu_hyp_va + BigInt(l.pkvm_stacktrace_off);
export const pkvmStacktraceKernVa = (l: NvheLayout): bigint => l.percpu_kern_va + BigInt(l.pkvm_stacktrace_off);
/** Hyp VA of the host context (what __host_exit leaves in x29: not a stack address). */
export const hostCtxtHypVa = (l: NvheLayout): bigint => l.percpu_hyp_va + BigInt(l.host_ctxt_off);

/** The hyp VA at which EL2 runs the instruction linked at `link`. */
export const hypTextVa = (l: NvheLayout, link: bigint): bigint => (l.hyp_va_tag << HYP_TAG_LSB) | (link - KIMAGE_VADDR + l.image_pa);
/** hyp_pa(): the PA behind a hyp linear VA. */
export const hypPa = (va: bigint): bigint => va & ((1n << HYP_TAG_LSB) - 1n);
/** __phys_to_kimg(): the kernel image VA of a PA inside the image. */
export const physToKimg = (l: NvheLayout, pa: bigint): bigint => pa + l.kimage_voffset;
