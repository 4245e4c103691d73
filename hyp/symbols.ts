// The hyp functions the simulated call chains run through, where the linker put them, and the host's
// kallsyms view of them. nVHE hyp code lives in the kernel image under its own symbol namespace: every
// hyp symbol carries the `__kvm_nvhe_` prefix. Addresses here are link-time (unrandomised) kernel image
// addresses; at run time the image sits `kaslr_offset` higher (KASLR), and EL2 runs the same code at a
// hyp VA of its own.

export const KVM_NVHE_PREFIX = '__kvm_nvhe_';

/** Link address of the kernel image (arm64, 48-bit VA): KIMAGE_VADDR. */
export const KIMAGE_VADDR = 0xffff800008000000n;

/** A hyp function as the simulation runs it. Offsets are from the function's start, in bytes. */
export interface HypFunction {
  /** Kernel name, without the `__kvm_nvhe_` prefix. */
  readonly name: string;
  /** Link-time address and size in bytes. */
  readonly link: bigint;
  readonly size: number;
  /** Bytes of stack its prologue allocates; its frame record (fp, lr) sits at the bottom. 0: no record. */
  readonly frame: number;
  /** Offset of its prologue's store of the frame record (where a stack overflow faults). */
  readonly store: number;
  /** Return address of its call to the next function (the instruction after its `bl`). */
  readonly ret: number;
  /** Offset of an instruction after `ret` that can take a data abort (the call_chain scenario's panic). */
  readonly fault: number;
}

type Row = readonly [name: string, size: number, frame: number, store: number, ret: number, fault: number];

/** The functions of the cover-letter sample, at the sample's link addresses. */
const SAMPLE: readonly (readonly [bigint, ...Row])[] = [
  [0xffff8000090a4db4n, '__kvm_vcpu_run', 0x40c, 0x60, 0x8, 0x30, 0x34],
  [0xffff8000090a51c0n, 'recursive_death', 0x34, 16, 0x10, 0x24, 0x28],
  [0xffff8000090a54c4n, 'hyp_panic', 0xf8, 0x30, 0x8, 0xac, 0xb0],
  [0xffff8000090a55bcn, 'hyp_panic_bad_stack', 0x10, 16, 0x4, 0x10, 0x10],
  [0xffff8000090a6800n, '__host_exit', 0x64, 0, 0, 0x64, 0x64],
  [0xffff8000090a77f4n, 'handle_trap', 0x128, 0x20, 0x8, 0xc4, 0xd0],
  [0xffff8000090a7b34n, 'handle___kvm_vcpu_run', 0x48, 0x20, 0x8, 0x30, 0x38],
];

/** Functions that random call chains run through (mem_protect.c, pgtable.c, hyp-main.c, ...). */
const POOL: readonly Row[] = [
  ['handle_host_hcall', 0x90, 0x20, 0x8, 0x5c, 0x64],
  ['handle___pkvm_host_share_hyp', 0x40, 16, 0x4, 0x1c, 0x20],
  ['__pkvm_host_share_hyp', 0x1a0, 0x50, 0x8, 0xa8, 0xb4],
  ['do_share', 0x1f0, 0x40, 0x8, 0x94, 0x9c],
  ['check_share', 0x1c8, 0x40, 0x8, 0x70, 0x78],
  ['host_request_owned_transition', 0x60, 0x20, 0x8, 0x38, 0x3c],
  ['__check_page_state_visitor', 0x6c, 16, 0x4, 0x40, 0x48],
  ['kvm_pgtable_walk', 0x98, 0x40, 0x8, 0x5c, 0x60],
  ['_kvm_pgtable_walk', 0x120, 0x50, 0x8, 0xd0, 0xd8],
  ['__kvm_pgtable_walk', 0x130, 0x60, 0xc, 0xb4, 0xbc],
  ['__kvm_pgtable_visit', 0x1e4, 0x70, 0xc, 0x150, 0x158],
  ['handle_host_mem_abort', 0xb0, 0x30, 0x8, 0x74, 0x7c],
  ['host_stage2_idmap', 0x1a4, 0x60, 0x8, 0x118, 0x120],
  ['kvm_pgtable_stage2_map', 0x14c, 0x70, 0xc, 0xe8, 0xf0],
  ['stage2_map_walker', 0x2f0, 0x50, 0x8, 0x1c4, 0x1cc],
  ['hyp_map_walker', 0xd8, 0x30, 0x8, 0x90, 0x98],
  ['hyp_put_page', 0x88, 16, 0x4, 0x50, 0x58],
  ['hyp_spin_lock', 0x50, 16, 0x4, 0x2c, 0x34],
  ['__pkvm_host_donate_hyp', 0x168, 0x50, 0x8, 0xe4, 0xec],
  ['pkvm_create_mappings_locked', 0xe0, 0x40, 0x8, 0x9c, 0xa4],
];

const POOL_LINK = 0xffff8000090a8000n;

const row = (link: bigint, [name, size, frame, store, ret, fault]: Row): HypFunction => ({ name, link, size, frame, store, ret, fault });

function placePool(): HypFunction[] {
  let link = POOL_LINK;
  return POOL.map((r) => {
    const f = row(link, r);
    link += BigInt((r[1] + 7) & ~7);
    return f;
  });
}

export const POOL_FUNCTIONS: readonly HypFunction[] = placePool();
export const HYP_FUNCTIONS: readonly HypFunction[] = [...SAMPLE.map(([link, ...r]) => row(link, r)), ...POOL_FUNCTIONS].sort((a, b) =>
  a.link < b.link ? -1 : 1,
);

const BY_NAME = new Map(HYP_FUNCTIONS.map((f) => [f.name, f]));

export function hypFunction(name: string): HypFunction {
  const f = BY_NAME.get(name);
  if (!f) throw new Error(`no hyp function ${name}`);
  return f;
}

/** A symbol as kallsyms knows it: run-time address. */
export interface KernelSymbol {
  readonly name: string;
  readonly start: bigint;
  readonly size: bigint;
}

/** The hyp symbols at their run-time addresses (link address + kaslr_offset). */
export const runtimeSymbols = (kaslrOffset: bigint): KernelSymbol[] =>
  HYP_FUNCTIONS.map((f) => ({ name: KVM_NVHE_PREFIX + f.name, start: f.link + kaslrOffset, size: BigInt(f.size) }));

/** The host's symbol table: which symbol contains a run-time address. */
export class Kallsyms {
  private readonly syms: readonly KernelSymbol[];

  constructor(symbols: readonly KernelSymbol[]) {
    this.syms = [...symbols].sort((a, b) => (a.start < b.start ? -1 : 1));
  }

  kallsyms_lookup(addr: bigint): KernelSymbol | null {
    let lo = 0;
    let hi = this.syms.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.syms[mid];
      if (addr < s.start) hi = mid - 1;
      else if (addr >= s.start + s.size) lo = mid + 1;
      else return s;
    }
    return null;
  }

  /**
   * printk's `%pB` (sprint_backtrace): a return address may point just past its caller's last
   * instruction, so the symbol is looked up at `addr - 1` while the offset printed is from `addr`;
   * an address in no symbol prints as bare hex.
   */
  sprint_backtrace(addr: bigint): string {
    const s = this.kallsyms_lookup((addr - 1n) & ((1n << 64n) - 1n));
    if (!s) return `0x${addr.toString(16)}`;
    return `${s.name}+0x${(addr - s.start).toString(16)}/0x${s.size.toString(16)}`;
  }
}

/** printk's `%016lx`. */
export const hex016 = (x: bigint): string => x.toString(16).padStart(16, '0');
