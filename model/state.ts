// The reference model's state (SEMANTICS §1, §3, §6): who owns each page and who borrows it, the
// VMs and their guest mappings, and the host fault log. No page tables, no bit tricks.
import type { MachineConfig, MemoryRegion } from '../types/config';
import type { Prot } from '../types/calls';

export type Owner = 'host' | 'hyp';
export type PageState = 'OWNED' | 'SHARED_OWNED' | 'SHARED_BORROWED' | 'NOPAGE';

/**
 * One physical page. Pages absent from `State.pages` are in their boot state: hyp's own in its
 * reserved memory, otherwise owned by the host and lent to nobody.
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

/**
 * A guest page mapping: gfn -> pfn, made by one share of `nr` pages (1 or 512), with the guest's
 * permissions and its access flag (`young`: set when shared, cleared by test_clear_young with mkold,
 * set again by mkyoung). Never mutated: a change stores a new object.
 */
export interface GuestMapping {
  readonly pfn: number;
  readonly nr: number;
  readonly prot: Prot;
  readonly young: boolean;
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

/** The vCPU this (the only simulated) CPU has loaded with __pkvm_vcpu_load. */
export interface LoadedVcpu {
  readonly vm: number;
  readonly vcpu: number;
}

export interface State {
  readonly config: MachineConfig;
  /** hyp's own memory from boot (its carve-out): owned and used by hyp unless `pages` says otherwise. */
  readonly reserved: readonly MemoryRegion[];
  /** Pages not in their boot state (see `page`). */
  readonly pages: Map<number, Page>;
  readonly vms: Map<number, Vm>;
  readonly faults: FaultLog;
  /** The loaded vCPU, or null (6.16's guest calls act on it; docs/semantics.md §6.1). */
  loaded: LoadedVcpu | null;
}

/** A page of hyp's reserved memory at boot. */
export const RESERVED_PAGE: Page = { ...DEFAULT_PAGE, owner: 'hyp', use: 'hyp' };

/** The state at start-up: the host owns all memory except what hyp reserved for itself. */
export function initialState(config: MachineConfig, hypReserved: readonly MemoryRegion[]): State {
  return { config, reserved: hypReserved, pages: new Map(), vms: new Map(), faults: { entries: [], warned: false, dropped: 0, aborts: 0 }, loaded: null };
}

const samePage = (a: Page, b: Page): boolean => a.owner === b.owner && a.use === b.use && a.hyp === b.hyp && a.ffa === b.ffa && a.guests === b.guests && a.pins === b.pins;

function isReserved(s: State, pfn: number): boolean {
  for (const [first, nr] of s.reserved) if (pfn >= first && pfn < first + nr) return true;
  return false;
}

/** A page's boot state: hyp's for its reserved memory, the host's (lent to nobody) for the rest. */
const bootPage = (s: State, pfn: number): Page => (isReserved(s, pfn) ? RESERVED_PAGE : DEFAULT_PAGE);

export const page = (s: State, pfn: number): Page => s.pages.get(pfn) ?? bootPage(s, pfn);

/** Stores a page, dropping it from the map when it is back in its boot state. */
export function setPage(s: State, pfn: number, p: Page): void {
  if (samePage(p, bootPage(s, pfn))) s.pages.delete(pfn);
  else s.pages.set(pfn, p);
}

/** Every page not in the host's default state, hyp's reserved memory first. */
export function* nonDefaultPages(s: State): Generator<[number, Page]> {
  for (const [first, nr] of s.reserved) for (let pfn = first; pfn < first + nr; pfn++) if (!s.pages.has(pfn)) yield [pfn, RESERVED_PAGE];
  for (const entry of s.pages) if (!samePage(entry[1], DEFAULT_PAGE)) yield entry;
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
  return { config: s.config, reserved: s.reserved, pages: new Map(s.pages), vms, faults: { ...s.faults, entries: [...s.faults.entries] }, loaded: s.loaded };
}
