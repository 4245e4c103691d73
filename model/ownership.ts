// The ownership hypercalls of SEMANTICS §3, one function each: checks in the table's order (range,
// initiator, completer, extra conditions), all-or-nothing, then the effect.
import { E2BIG, EBUSY, EINVAL, ENOENT, ENOMEM, EPERM } from '../types/errno';
import { GUEST_IPA_PFNS, MAX_VMS, PTRS_PER_TABLE, VM_HANDLE_OFFSET, VM_MIN_PAGES } from '../types/config';
import type { ArgsOf, RangeArgs } from '../types/calls';
import { checkRange } from './range';
import { hostState, hypState, page, setPage, type Page, type State } from './state';

type Check = (p: Page) => boolean;

/** Runs the range check, then each page check in order; returns the first failure or 0. */
function checkPages(s: State, { pfn, nr_pages }: RangeArgs, ...checks: [Check, number][]): number | 'noop' {
  const r = checkRange(s.config, pfn, nr_pages || 1);
  if (r !== 0) return r;
  if (nr_pages === 0) return 'noop';
  for (const [ok, errno] of checks) for (let i = 0; i < nr_pages; i++) if (!ok(page(s, pfn + i))) return -errno;
  return 0;
}

function update(s: State, { pfn, nr_pages }: RangeArgs, f: (p: Page) => Page): 0 {
  for (let i = 0; i < nr_pages; i++) setPage(s, pfn + i, f(page(s, pfn + i)));
  return 0;
}

/** Runs the checks and, when they all pass, applies the effect to every page of the range. */
function transition(s: State, range: RangeArgs, effect: (p: Page) => Page, ...checks: [Check, number][]): number {
  const r = checkPages(s, range, ...checks);
  if (r === 'noop') return 0;
  return r === 0 ? update(s, range, effect) : r;
}

const hostIs = (st: string): Check => (p) => hostState(p) === st;
const hypIs = (st: string): Check => (p) => hypState(p) === st;
const one = (pfn: number): RangeArgs => ({ pfn, nr_pages: 1 });

// The page checks of the table, built once.
const HOST_OWNED: [Check, number] = [hostIs('OWNED'), EPERM];
const HOST_SHARED_OWNED: [Check, number] = [hostIs('SHARED_OWNED'), EPERM];
const HYP_NOPAGE: [Check, number] = [hypIs('NOPAGE'), EPERM];
const HYP_SHARED_BORROWED: [Check, number] = [hypIs('SHARED_BORROWED'), EPERM];
const UNPINNED: [Check, number] = [(p) => p.pins === 0, EBUSY];
const HYP_OWNED_UNUSED: [Check, number] = [(p) => hypState(p) === 'OWNED' && p.use === 'free', EPERM];
const HOST_NOPAGE: [Check, number] = [hostIs('NOPAGE'), EPERM];
const LENT_TO_FFA: [Check, number] = [(p) => hostState(p) === 'SHARED_OWNED' && p.ffa, EPERM];
const PINNED: [Check, number] = [(p) => p.pins > 0, EINVAL];
const SHARED_ONLY_WITH_GUESTS: [Check, number] = [(p) => hostState(p) === 'OWNED' || (hostState(p) === 'SHARED_OWNED' && !p.hyp && !p.ffa), EPERM];

// The effects, built once.
const lendToHyp = (p: Page): Page => ({ ...p, hyp: true });
const returnFromHyp = (p: Page): Page => ({ ...p, hyp: false });
const giveToHyp = (p: Page): Page => ({ ...p, owner: 'hyp', use: 'free' });
const giveToHost = (p: Page): Page => ({ ...p, owner: 'host', use: 'free' });
const lendToFfa = (p: Page): Page => ({ ...p, ffa: true });
const returnFromFfa = (p: Page): Page => ({ ...p, ffa: false });
const pin = (p: Page): Page => ({ ...p, pins: p.pins + 1 });
const unpin = (p: Page): Page => ({ ...p, pins: p.pins - 1 });
const lendToGuest = (p: Page): Page => ({ ...p, guests: p.guests + 1 });

export const __pkvm_host_share_hyp = (s: State, a: ArgsOf<'__pkvm_host_share_hyp'>) =>
  transition(s, one(a.pfn), lendToHyp, HOST_OWNED, HYP_NOPAGE);

export const __pkvm_host_unshare_hyp = (s: State, a: ArgsOf<'__pkvm_host_unshare_hyp'>) =>
  transition(s, one(a.pfn), returnFromHyp, HOST_SHARED_OWNED, HYP_SHARED_BORROWED, UNPINNED);

export const __pkvm_host_donate_hyp = (s: State, a: RangeArgs) =>
  transition(s, a, giveToHyp, HOST_OWNED, HYP_NOPAGE);

/** Stricter than the kernel: hyp gives back only pages it does not use itself (see README). */
export const __pkvm_hyp_donate_host = (s: State, a: RangeArgs) =>
  transition(s, a, giveToHost, HYP_OWNED_UNUSED, HOST_NOPAGE);

export const __pkvm_host_share_ffa = (s: State, a: RangeArgs) => transition(s, a, lendToFfa, HOST_OWNED);

/** Stricter than the kernel: the page must be lent to ffa, not just shared (see README). */
export const __pkvm_host_unshare_ffa = (s: State, a: RangeArgs) =>
  transition(s, a, returnFromFfa, LENT_TO_FFA);

export const hyp_pin_shared_mem = (s: State, a: RangeArgs) =>
  transition(s, a, pin, HOST_SHARED_OWNED, HYP_SHARED_BORROWED);

export const hyp_unpin_shared_mem = (s: State, a: RangeArgs) => transition(s, a, unpin, PINNED);

/** A guest transition is one page, or a 2 MiB-aligned block of 512 (gfn, and pfn when given). */
function guestShapeOk(nr: number, gfn: number, pfn = 0): boolean {
  const aligned = (x: number) => x % PTRS_PER_TABLE === 0;
  return (nr === 1 || (nr === PTRS_PER_TABLE && aligned(gfn) && aligned(pfn))) && gfn + nr <= GUEST_IPA_PFNS;
}

// `prot` is a subset of RWX by construction of the vocabulary, so the kernel's first check cannot fail.
export function __pkvm_host_share_guest(s: State, a: ArgsOf<'__pkvm_host_share_guest'>): number {
  const vm = s.vms.get(a.vm);
  if (!vm || !guestShapeOk(a.nr_pages, a.gfn, a.pfn)) return -EINVAL;
  const r = checkPages(s, a, SHARED_ONLY_WITH_GUESTS);
  if (r !== 0) return r === 'noop' ? 0 : r;
  for (let i = 0; i < a.nr_pages; i++) if (vm.gfns.has(a.gfn + i)) return -EPERM;
  for (let i = 0; i < a.nr_pages; i++) vm.gfns.set(a.gfn + i, { pfn: a.pfn + i, nr: a.nr_pages, prot: a.prot });
  return update(s, a, lendToGuest);
}

export function __pkvm_host_unshare_guest(s: State, a: ArgsOf<'__pkvm_host_unshare_guest'>): number {
  const vm = s.vms.get(a.vm);
  if (!vm || !guestShapeOk(a.nr_pages, a.gfn)) return -EINVAL;
  const first = vm.gfns.get(a.gfn);
  if (!first) return -ENOENT;
  if (first.nr !== a.nr_pages) return -E2BIG; // the kernel refuses to unshare part of (or more than) one leaf
  for (let i = 0; i < a.nr_pages; i++) if (hostState(page(s, first.pfn + i)) !== 'SHARED_OWNED') return -EPERM;
  unmapGuest(s, a.vm, a.gfn, a.nr_pages);
  return 0;
}

function unmapGuest(s: State, handle: number, gfn: number, nr: number): void {
  const vm = s.vms.get(handle)!;
  for (let i = 0; i < nr; i++) {
    const m = vm.gfns.get(gfn + i)!;
    vm.gfns.delete(gfn + i);
    const p = page(s, m.pfn);
    setPage(s, m.pfn, { ...p, guests: p.guests - 1 });
  }
}

export function __pkvm_init_vm(s: State, a: RangeArgs): number {
  if (a.nr_pages < VM_MIN_PAGES) return -EINVAL;
  const r = checkPages(s, a, HOST_OWNED, HYP_NOPAGE);
  if (r !== 0) return r === 'noop' ? 0 : r;
  let slot = 0;
  while (s.vms.has(VM_HANDLE_OFFSET + slot)) slot++;
  if (slot === MAX_VMS) return -ENOMEM;
  const handle = VM_HANDLE_OFFSET + slot;
  s.vms.set(handle, { first: a.pfn, nr: a.nr_pages, gfns: new Map() });
  update(s, a, (p) => ({ ...p, owner: 'hyp', use: handle })); // hyp uses them for this VM
  Object.assign(s.faults, { entries: [], warned: false, dropped: 0, aborts: 0 });
  return handle;
}

export function __pkvm_teardown_vm(s: State, a: ArgsOf<'__pkvm_teardown_vm'>): number {
  const vm = s.vms.get(a.vm);
  if (!vm) return -ENOENT;
  for (const gfn of [...vm.gfns.keys()]) unmapGuest(s, a.vm, gfn, 1);
  s.vms.delete(a.vm);
  return update(s, { pfn: vm.first, nr_pages: vm.nr }, giveToHost);
}
