// Where a trace's pfns live on the real machine. Traces are written for the simulated machine; on
// the kernel target each memory region of the trace's config is laid into the RAM window the
// kernel reserved for the agent (pkvm_check_window=), keeping every page's offset inside its
// 2 MiB block, so blocks, splits and ranges behave as in the simulation. A pfn outside the
// regions (MMIO in the trace) stays where it is unless that is real RAM, which it must never
// touch: those move up by RAM_SHIFT, past the end of the guest's RAM, where they are MMIO again.
import type { MachineConfig } from '../../types/config';
import { PTRS_PER_TABLE } from '../../types/config';
import { U64_PFNS } from '../../types/kernel';
import { hex, InputError } from '../vocabulary';
import type { Hello } from './abi';

/** Pfns of real RAM that the trace calls MMIO move up by 4 GiB. */
export const RAM_SHIFT = 0x100000;

interface Slot {
  readonly first: number;
  readonly nr: number;
  /** Real pfn of the region's first page. */
  readonly to: number;
}

/** First pfn of the guest's RAM on QEMU's virt machine (PA 1 GiB). */
export const RAM_FIRST_PFN = 0x40000;
/** RAM the guest kernel keeps for itself below the window. */
export const KERNEL_RAM_MIB = 256;
/** The largest window: configs with more memory than this do not run on the kernel target. */
export const MAX_WINDOW_PAGES = 1 << 18;

/** Pages of window a config needs: its regions one after the other, each from its own offset in a 2 MiB block. */
export function windowPages(config: MachineConfig): number {
  let next = 0;
  for (const [first, nr] of config.memory) next = Math.ceil((next + (first % PTRS_PER_TABLE) + nr) / PTRS_PER_TABLE) * PTRS_PER_TABLE;
  if (next > MAX_WINDOW_PAGES) throw new InputError(`config: its memory needs ${next} pages on the kernel target, which runs at most ${MAX_WINDOW_PAGES} (1 GiB)`);
  return next;
}

export class Relocation {
  private readonly slots: Slot[] = [];

  constructor(
    config: MachineConfig,
    private readonly hello: Hello,
  ) {
    const need = windowPages(config);
    if (hello.windowPages !== need) throw new Error(`the kernel reserved ${hello.windowPages} pages for the agent, the config needs ${need}`);
    let next = hello.windowPfn;
    for (const [first, nr] of config.memory) {
      const to = next + (first % PTRS_PER_TABLE);
      this.slots.push({ first, nr, to });
      next = Math.ceil((to + nr) / PTRS_PER_TABLE) * PTRS_PER_TABLE;
    }
  }

  /**
   * The real pfn of a trace pfn. The kernel computes `pfn << PAGE_SHIFT` in u64, so bits of the pfn
   * above 2^52 are dropped: the low part is relocated and the high part kept, and the alias lands
   * where the trace's alias does.
   */
  pfn(p: number): number {
    const low = p % U64_PFNS;
    return p - low + this.relocate(low);
  }

  private relocate(p: number): number {
    for (const s of this.slots) if (p >= s.first && p < s.first + s.nr) return s.to + (p - s.first);
    return p >= this.hello.ramFirstPfn && p < this.hello.ramEndPfn ? p + RAM_SHIFT : p;
  }

  /** The trace pfn a real pfn of the window stands for, as text. */
  describePfn(real: number): string {
    for (const s of this.slots) if (real >= s.to && real < s.to + s.nr) return `pfn ${hex(s.first + (real - s.to))} of the trace`;
    return 'outside the trace\'s memory';
  }

  /** One line per region, for replay output. */
  describe(): string[] {
    return this.slots.map((s) => `pfns ${hex(s.first)}-${hex(s.first + s.nr - 1)} -> ${hex(s.to)}-${hex(s.to + s.nr - 1)} (kernel window at ${hex(this.hello.windowPfn)})`);
  }

  /** Real [pfn, nr) spans of every region, for scans. */
  spans(): { readonly first: number; readonly nr: number; readonly to: number }[] {
    return this.slots;
  }
}
