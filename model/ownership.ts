// The ownership hypercalls of docs/semantics.md §5-§6, one function each: the kernel's checks in its
// order (the range rule of the version where the kernel checks the range, then the page states),
// all-or-nothing, then the effect. Version differences come from the table in types/kernel.ts.
import { EBUSY, EINVAL, ENOENT, ENOMEM, EPERM } from '../types/errno';
import { MAX_VMS, VM_HANDLE_OFFSET, VM_MIN_PAGES } from '../types/config';
import { HYP_PANIC, kernelOf, pinLimit, u32Arg } from '../types/kernel';
import type { ArgsOf, RangeArgs } from '../types/calls';
import { checkRange, isMemory, pagesVisited, u64Range } from './range';
import { hostState, hypState, page, setPage, type Page, type State } from './state';

/** A page check; `null` is a page outside memory, which host and hyp both see as NOPAGE. */
export type Check = (p: Page | null) => boolean;
/** A step of a call's checks: a page check with the result when a page fails it, or a range check. */
export type PageCheck = readonly [Check, number];
type Step = PageCheck | typeof HOST_RANGE | typeof HYP_RANGE;
/** The version's range rule on the host range (__host_check_page_state_range's first step). */
export const HOST_RANGE = 'host-range';
/** The same on hyp's side, where the version walks hyp's stage-1 (RangeRule.hypWalk). */
const HYP_RANGE = 'hyp-range';

const pageAt = (s: State, pfn: number): Page | null => (isMemory(s.config, pfn) ? page(s, pfn) : null);

/**
 * Runs the steps in order over the pages the version visits; returns the first failure, or the
 * range the effect applies to (empty when the version visits no page of it).
 */
export function checkPages(s: State, a: RangeArgs, ...steps: Step[]): number | RangeArgs {
  const rule = kernelOf(s.config).range;
  const r = u64Range(a.pfn, a.nr_pages);
  const visited = pagesVisited(rule, r);
  for (const step of steps) {
    if (step === HOST_RANGE || step === HYP_RANGE) {
      const e = step === HYP_RANGE && !rule.hypWalk ? 0 : checkRange(s.config, rule, r);
      if (e !== 0) return e;
      continue;
    }
    const [ok, result] = step;
    for (let i = 0; i < visited; i++) if (!ok(pageAt(s, r.pfn + i))) return result;
  }
  return { pfn: r.pfn, nr_pages: visited };
}

export function update(s: State, { pfn, nr_pages }: RangeArgs, f: (p: Page) => Page): 0 {
  for (let i = 0; i < nr_pages; i++) setPage(s, pfn + i, f(page(s, pfn + i)));
  return 0;
}

/** Runs the checks and, when they all pass, applies the effect to every page visited. */
function transition(s: State, range: RangeArgs, effect: (p: Page) => Page, ...steps: Step[]): number {
  const r = checkPages(s, range, ...steps);
  return typeof r === 'number' ? r : update(s, r, effect);
}

const hostIs = (st: string): Check => (p) => (p ? hostState(p) : 'NOPAGE') === st;
const hypIs = (st: string): Check => (p) => (p ? hypState(p) : 'NOPAGE') === st;
const one = (pfn: number): RangeArgs => ({ pfn, nr_pages: 1 });
const pins = (p: Page | null): number => p?.pins ?? 0;

// The page checks of the tables, built once.
const HOST_OWNED: PageCheck = [hostIs('OWNED'), -EPERM];
const HOST_SHARED_OWNED: PageCheck = [hostIs('SHARED_OWNED'), -EPERM];
const HYP_NOPAGE: PageCheck = [hypIs('NOPAGE'), -EPERM];
const HYP_SHARED_BORROWED: PageCheck = [hypIs('SHARED_BORROWED'), -EPERM];
const UNPINNED: PageCheck = [(p) => pins(p) === 0, -EBUSY];
const HYP_OWNED_UNUSED: PageCheck = [(p) => p !== null && hypState(p) === 'OWNED' && p.use === 'free', -EPERM];
const HOST_NOPAGE: PageCheck = [hostIs('NOPAGE'), -EPERM];
const LENT_TO_FFA: PageCheck = [(p) => p !== null && hostState(p) === 'SHARED_OWNED' && p.ffa, -EPERM];
/** hyp_page_ref_dec BUG_ONs on a page with no reference (memory.h:60). */
const PINNED: PageCheck = [(p) => pins(p) > 0, HYP_PANIC];
/** hyp_page_ref_inc BUG_ONs at the u16 limit (memory.h:54). */
const pinRoom = (s: State): PageCheck => [(p) => pins(p) < pinLimit(s.config), HYP_PANIC];

// The effects, built once.
const lendToHyp = (p: Page): Page => ({ ...p, hyp: true });
const returnFromHyp = (p: Page): Page => ({ ...p, hyp: false });
const giveToHyp = (p: Page): Page => ({ ...p, owner: 'hyp', use: 'free' });
const giveToHost = (p: Page): Page => ({ ...p, owner: 'host', use: 'free' });
const lendToFfa = (p: Page): Page => ({ ...p, ffa: true });
const returnFromFfa = (p: Page): Page => ({ ...p, ffa: false });
const pin = (p: Page): Page => ({ ...p, pins: p.pins + 1 });
const unpin = (p: Page): Page => ({ ...p, pins: p.pins - 1 });

export const __pkvm_host_share_hyp = (s: State, a: ArgsOf<'__pkvm_host_share_hyp'>) =>
  transition(s, one(a.pfn), lendToHyp, HOST_RANGE, HOST_OWNED, HYP_NOPAGE);

/** 6.12 checks the pins before hyp's state; no reachable state tells the two orders apart (§10 item 10). */
export const __pkvm_host_unshare_hyp = (s: State, a: ArgsOf<'__pkvm_host_unshare_hyp'>) =>
  transition(s, one(a.pfn), returnFromHyp, HOST_RANGE, HOST_SHARED_OWNED, HYP_SHARED_BORROWED, UNPINNED);

export const __pkvm_host_donate_hyp = (s: State, a: RangeArgs) =>
  transition(s, a, giveToHyp, HOST_RANGE, HOST_OWNED, HYP_NOPAGE);

/**
 * hyp's side is checked first, then the host's range and state. Stricter than the kernel: hyp gives
 * back only pages it does not use itself (see README).
 */
export function __pkvm_hyp_donate_host(s: State, a: RangeArgs): number {
  const r = checkPages(s, a, HYP_RANGE, HYP_OWNED_UNUSED, HOST_RANGE, HOST_NOPAGE);
  if (typeof r === 'number') return r;
  // Unmapping a wrapping range unmaps nothing, and do_donate's WARN_ON panics (types/kernel.ts).
  if (kernelOf(s.config).range.wrappingUnmapPanics && u64Range(a.pfn, a.nr_pages).wraps) return HYP_PANIC;
  return update(s, r, giveToHost);
}

export const __pkvm_host_share_ffa = (s: State, a: RangeArgs) => transition(s, a, lendToFfa, HOST_RANGE, HOST_OWNED);

/** Stricter than the kernel: the page must be lent to ffa, not just shared (see README). */
export const __pkvm_host_unshare_ffa = (s: State, a: RangeArgs) =>
  transition(s, a, returnFromFfa, HOST_RANGE, LENT_TO_FFA);

/** The 65,536th pin of a page (one past `pinLimit`) panics; the checks before it are the host's and hyp's states. */
export const hyp_pin_shared_mem = (s: State, a: RangeArgs) =>
  transition(s, a, pin, HOST_RANGE, HOST_SHARED_OWNED, HYP_SHARED_BORROWED, pinRoom(s));

/**
 * No checks: hyp_unpin_shared_mem drops one reference per page from `from` up to `to` (no page when
 * the range is empty or wraps) and panics on a page that has none, in both versions.
 */
export function hyp_unpin_shared_mem(s: State, a: RangeArgs): number {
  const r = u64Range(a.pfn, a.nr_pages);
  const range = { pfn: r.pfn, nr_pages: r.wraps ? 0 : r.nr };
  for (let i = 0; i < range.nr_pages; i++) if (!PINNED[0](pageAt(s, r.pfn + i))) return HYP_PANIC;
  return update(s, range, unpin);
}

/**
 * Our (pfn, nr_pages) stands for the kernel's metadata and PGD areas (docs/semantics.md §7): too few
 * pages for both is -EINVAL; map_donated_memory turns any failure of the donation into -ENOMEM.
 */
export function __pkvm_init_vm(s: State, a: RangeArgs): number {
  if (u64Range(a.pfn, a.nr_pages).nr < VM_MIN_PAGES) return -EINVAL;
  const r = checkPages(s, a, HOST_RANGE, HOST_OWNED, HYP_NOPAGE);
  if (typeof r === 'number') return -ENOMEM;
  if (r.nr_pages === 0) return 0; // a wrapping range in 6.12: nothing visited, no VM
  let slot = 0;
  while (s.vms.has(VM_HANDLE_OFFSET + slot)) slot++;
  if (slot === MAX_VMS) return -ENOMEM;
  const handle = VM_HANDLE_OFFSET + slot;
  s.vms.set(handle, { first: r.pfn, nr: r.nr_pages, gfns: new Map() });
  update(s, r, (p) => ({ ...p, owner: 'hyp', use: handle })); // hyp uses them for this VM
  Object.assign(s.faults, { entries: [], warned: false, dropped: 0, aborts: 0 });
  return handle;
}

/**
 * The VM's pages go back to the host. Its guest stage-2 is destroyed without touching host state: a
 * page the guest still maps stays SHARED_OWNED with its share count, for good (6.16; 6.12 has no
 * guest shares). A vCPU of the VM still loaded is a WARN, so a panic.
 */
export function __pkvm_teardown_vm(s: State, a: ArgsOf<'__pkvm_teardown_vm'>): number {
  const handle = u32Arg(a.vm);
  const vm = s.vms.get(handle);
  if (!vm) return -ENOENT;
  if (s.loaded?.vm === handle) return HYP_PANIC;
  s.vms.delete(handle);
  return update(s, { pfn: vm.first, nr_pages: vm.nr }, giveToHost);
}
