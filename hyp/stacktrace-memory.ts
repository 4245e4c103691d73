// Simulated memory for the nVHE stack unwinder: a few byte regions (the hyp stack page, the per-CPU
// area holding the overflow stack and the stacktrace buffers) mapped at virtual addresses in two
// address spaces. EL2 sees them at hyp VAs; the host at its own kernel VAs (its aliases of the same
// pages). An access to an unmapped address — the guard page below the hyp stack, for one — faults.

/** Who is accessing: the hypervisor at EL2 (hyp VAs) or the host kernel at EL1 (kernel VAs). */
export type AddressSpace = 'el2' | 'host';

/** A synchronous data abort: the access hit no mapping. */
export class MemoryFault extends Error {
  constructor(
    readonly space: AddressSpace,
    readonly addr: bigint,
    readonly write: boolean,
  ) {
    super(`${space} ${write ? 'write' : 'read'} fault at 0x${addr.toString(16)}`);
    this.name = 'MemoryFault';
  }
}

/** Sees every access before it happens; the checker installs one to bound and police the unwind. */
export type MemoryObserver = (space: AddressSpace, addr: bigint, write: boolean) => void;

interface Mapping {
  readonly space: AddressSpace;
  readonly va: bigint;
  readonly end: bigint;
  readonly view: DataView;
}

export const U64_MASK = (1n << 64n) - 1n;
/** Arithmetic modulo 2^64, like unsigned long. */
export const u64 = (x: bigint): bigint => x & U64_MASK;

export class StackMemory {
  private readonly maps: Mapping[] = [];  observer: MemoryObserver | null = null;

  /** Maps `bytes` at `va` in `space`; several mappings may share the same bytes (aliases). */
  map(space: AddressSpace, va: bigint, bytes: Uint8Array): void {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.maps.push({ space, va, end: va + BigInt(bytes.byteLength), view });
  }

  /** The mapping that holds [addr, addr + 8); the last one used is tried first. */
  private find(space: AddressSpace, addr: bigint, write: boolean): Mapping {
    const last = this.last;
    if (last && last.space === space && addr >= last.va && addr + 8n <= last.end) return last;
    for (const m of this.maps) if (m.space === space && addr >= m.va && addr + 8n <= m.end) return (this.last = m);
    throw new MemoryFault(space, addr, write);
  }

  private last: Mapping | null = null;

  /** An 8-byte little-endian load. */
  read64(space: AddressSpace, addr: bigint): bigint {
    this.observer?.(space, addr, false);
    const m = this.find(space, addr, false);
    return m.view.getBigUint64(Number(addr - m.va), true);
  }

  /** An 8-byte little-endian store. */
  write64(space: AddressSpace, addr: bigint, value: bigint): void {
    this.observer?.(space, addr, true);
    const m = this.find(space, addr, true);
    m.view.setBigUint64(Number(addr - m.va), u64(value), true);
  }
}
