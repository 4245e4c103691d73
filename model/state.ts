// The reference model's state (SEMANTICS §1, §3, §6): who owns each page and who borrows it, the
// VMs and their guest mappings, and the host fault log. No page tables, no bit tricks.
import type { MachineConfig, MemoryRegion } from '../types/config';
import type { Prot } from '../types/calls';

export type Owner = 'host' | 'hyp';
export type PageState = 'OWNED' | 'SHARED_OWNED' | 'SHARED_BORROWED' | 'NOPAGE';

/**
 * One physical page. Pages absent from `State.pages` are in the default state: owned by the host,
 * lent to nobody.
 */
export interface Page {
  readonly owner: Owner;
  /** For a hyp-owned page, who uses it: nobody yet ('free', a plain donation), hyp itself, or a VM. */
  readonly use: 'free' | 'hyp' | number;
  /** Borrowers of a host-owned page: hyp, the secure world (ffa), and how many guest mappings. */
  readonly hyp: boolean;
  readonly ffa: boolean;
  readonly guests: number;
  /** Pins hyp holds on a page it borrows (hyp_pin_shared_mem). */
  readonly pins: number;
}

export const DEFAULT_PAGE: Page = { owner: 'host', use: 'free', hyp: false, ffa: false, guests: 0, pins: 0 };

/** A guest page mapping: gfn -> pfn, made by one share of `nr` pages (1 or 512). */
export interface GuestMapping {
  readonly pfn: number;
  readonly nr: number;
  readonly prot: Prot;
}

export interface Vm {
  /** The pages donated at __pkvm_init_vm: metadata, guest PGD, page-table pool. */
  readonly first: number;
  readonly nr: number;
  readonly gfns: Map<number, GuestMapping>;
}

export interface FaultLog {
  /** Faulting pfns, in order, without duplicates. */
  entries: number[];
  /** The single "fault tracking buffer is full" warning was recorded. */
  warned: boolean;
  /** New faults counted but not stored because the table was full. */
  dropped: number;
  /** Every abort injected since the log was last cleared. */
  aborts: number;
}

export interface State {
  readonly config: MachineConfig;
  readonly pages: Map<number, Page>;
  readonly vms: Map<number, Vm>;
  readonly faults: FaultLog;
}

/** The state at start-up: the host owns all memory except what hyp reserved for itself. */
export function initialState(config: MachineConfig, hypReserved: readonly MemoryRegion[]): State {
  const pages = new Map<number, Page>();
  for (const [first, nr] of hypReserved) for (let p = first; p < first + nr; p++) pages.set(p, { ...DEFAULT_PAGE, owner: 'hyp', use: 'hyp' });
  return { config, pages, vms: new Map(), faults: { entries: [], warned: false, dropped: 0, aborts: 0 } };
}

export const page = (s: State, pfn: number): Page => s.pages.get(pfn) ?? DEFAULT_PAGE;

/** Stores a page, dropping it from the map when it is back in the default state. */
export function setPage(s: State, pfn: number, p: Page): void {
  const isDefault = p.owner === 'host' && !p.hyp && !p.ffa && p.guests === 0 && p.pins === 0;
  if (isDefault) s.pages.delete(pfn);
  else s.pages.set(pfn, p);
}

export function hostState(p: Page): PageState {
  if (p.owner !== 'host') return 'NOPAGE';
  return p.hyp || p.ffa || p.guests > 0 ? 'SHARED_OWNED' : 'OWNED';
}

export function hypState(p: Page): PageState {
  if (p.owner === 'hyp') return 'OWNED';
  return p.hyp ? 'SHARED_BORROWED' : 'NOPAGE';
}

/** Deep copy, for explorers and "state before" comparisons. */
export function cloneState(s: State): State {
  const vms = new Map<number, Vm>();
  for (const [h, vm] of s.vms) vms.set(h, { ...vm, gfns: new Map(vm.gfns) });
  return { config: s.config, pages: new Map(s.pages), vms, faults: { ...s.faults, entries: [...s.faults.entries] } };
}
