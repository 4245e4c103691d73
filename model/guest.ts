// 6.16's guest-memory hypercalls and the vCPU load/put they depend on (docs/semantics.md §6.1): the
// handler's checks (a loaded vCPU, or a VM by handle), then mem_protect.c's, in the kernel's order.
// A guest's stage-2 is modelled per gfn; a 2 MiB share is 512 gfns with nr 512.
import { E2BIG, EINVAL, ENOENT, EPERM, ERANGE } from '../types/errno';
import { GUEST_IPA_PFNS, PTRS_PER_TABLE, VM_VCPUS } from '../types/config';
import { HYP_PANIC, u32Arg, U64_PFNS } from '../types/kernel';
import type { ArgsOf, LoadedVm } from '../types/calls';
import { checkPages, HOST_RANGE, update, type PageCheck } from './ownership';
import { hostState, page, type GuestMapping, type Page, type State, type Vm } from './state';

/** A guest frame as the kernel computes it: the IPA is `gfn << PAGE_SHIFT` in u64. */
const ipaPfn = (gfn: number): number => gfn % U64_PFNS;

/**
 * __guest_check_transition_size: one page, or one 2 MiB block with the IPA (and the physical
 * address, where there is one) aligned to it; anything else is -EINVAL.
 */
function transitionSizeOk(nr: number, gfn: number, pfn = 0): boolean {
  const aligned = (x: number) => x % PTRS_PER_TABLE === 0;
  return nr === 1 || (nr === PTRS_PER_TABLE && aligned(gfn) && aligned(pfn));
}

/** The guest stage-2 walk's limit: a range past the IPA space is -ERANGE (_kvm_pgtable_walk). */
const beyondIpa = (gfn: number, nr: number): boolean => gfn + nr > GUEST_IPA_PFNS;

// ---- the loaded vCPU ----------------------------------------------------------------------------

/**
 * pkvm_load_hyp_vcpu: nothing happens when this CPU has a vCPU loaded already, the VM does not
 * exist, or the index is not one of its vCPUs. The handler writes no result; the model says 0.
 */
export function __pkvm_vcpu_load(s: State, a: ArgsOf<'__pkvm_vcpu_load'>): number {
  const [vm, vcpu] = [u32Arg(a.vm), u32Arg(a.vcpu)];
  if (s.loaded === null && s.vms.has(vm) && vcpu < VM_VCPUS) s.loaded = { vm, vcpu };
  return 0;
}

/** pkvm_put_hyp_vcpu: drops the loaded vCPU, if any. */
export function __pkvm_vcpu_put(s: State): number {
  s.loaded = null;
  return 0;
}

/**
 * Runs a call that acts on the loaded vCPU's VM: with none loaded, `vm` (the host's usual pattern)
 * loads its vCPU 0 around the call; with no VM at all it is the handler's -EINVAL.
 */
function onLoadedVm(s: State, vm: LoadedVm, call: (v: Vm) => number): number {
  const handle = s.loaded?.vm ?? (vm === null ? null : u32Arg(vm));
  const v = handle === null ? undefined : s.vms.get(handle);
  return v === undefined ? -EINVAL : call(v);
}

/** A VM by handle (a 32-bit register), as get_np_pkvm_hyp_vm finds it (unknown: -EINVAL). */
function onVm(s: State, handle: number, call: (v: Vm) => number): number {
  const v = s.vms.get(u32Arg(handle));
  return v === undefined ? -EINVAL : call(v);
}

// ---- share and unshare --------------------------------------------------------------------------

/** The host may share a page it owns, or one it shares with guests only (host_share_guest_count > 0). */
const GUEST_SHAREABLE: PageCheck = [(p) => p !== null && (hostState(p) === 'OWNED' || (hostState(p) === 'SHARED_OWNED' && p.guests > 0)), -EPERM];
const lendToGuest = (p: Page): Page => ({ ...p, guests: p.guests + 1 });
const returnFromGuest = (p: Page): Page => ({ ...p, guests: p.guests - 1 });

/** `prot` is a subset of RWX by construction of the vocabulary, so the kernel's check of it cannot fail. */
export const __pkvm_host_share_guest = (s: State, a: ArgsOf<'__pkvm_host_share_guest'>): number =>
  onLoadedVm(s, a.vm, (vm) => {
    const gfn = ipaPfn(a.gfn);
    if (!transitionSizeOk(a.nr_pages, gfn, a.pfn)) return -EINVAL;
    const host = checkPages(s, a, HOST_RANGE);
    if (typeof host === 'number') return host;
    if (beyondIpa(gfn, a.nr_pages)) return -ERANGE;
    for (let i = 0; i < a.nr_pages; i++) if (vm.gfns.has(gfn + i)) return -EPERM;
    const r = checkPages(s, a, GUEST_SHAREABLE);
    if (typeof r === 'number') return r;
    for (let i = 0; i < a.nr_pages; i++) vm.gfns.set(gfn + i, { pfn: r.pfn + i, nr: a.nr_pages, prot: a.prot, young: true });
    return update(s, r, lendToGuest);
  });

/**
 * __check_host_shared_guest: the leaf at the IPA must be valid, exactly `nr` pages, and the host's
 * pages shared. Returns the mapping, or the errno.
 */
function checkHostSharedGuest(s: State, vm: Vm, gfn: number, nr: number): GuestMapping | number {
  if (beyondIpa(gfn, 1)) return -ERANGE;
  const m = vm.gfns.get(gfn);
  if (!m) return -ENOENT;
  if (m.nr !== nr) return -E2BIG;
  for (let i = 0; i < nr; i++) if (hostState(page(s, m.pfn + i)) !== 'SHARED_OWNED') return -EPERM;
  return m;
}

export const __pkvm_host_unshare_guest = (s: State, a: ArgsOf<'__pkvm_host_unshare_guest'>): number =>
  onVm(s, a.vm, (vm) => {
    const gfn = ipaPfn(a.gfn);
    if (!transitionSizeOk(a.nr_pages, gfn)) return -EINVAL;
    const m = checkHostSharedGuest(s, vm, gfn, a.nr_pages);
    if (typeof m === 'number') return m;
    for (let i = 0; i < a.nr_pages; i++) vm.gfns.delete(gfn + i);
    return update(s, { pfn: m.pfn, nr_pages: a.nr_pages }, returnFromGuest);
  });

// ---- attributes of shared pages -----------------------------------------------------------------

/**
 * assert_host_shared_guest (built with CONFIG_NVHE_EL2_DEBUG, as modelled): any failure of the check
 * above except -ENOENT is a WARN, so a panic; it looks at the first leaf only.
 */
function assertHostSharedGuest(s: State, vm: Vm, gfn: number, nr: number): boolean {
  const r = checkHostSharedGuest(s, vm, gfn, nr);
  return typeof r !== 'number' || r === -ENOENT;
}

/** Applies `f` to every mapped gfn of [gfn, gfn + nr) (a stage-2 walk over the range's valid leaves). */
function updateLeaves(vm: Vm, gfn: number, nr: number, f: (m: GuestMapping) => GuestMapping): void {
  for (let i = 0; i < nr; i++) {
    const m = vm.gfns.get(gfn + i);
    if (m) vm.gfns.set(gfn + i, f(m));
  }
}

/**
 * kvm_pgtable_stage2_relax_perms: adds the permissions asked for, never removes one. An unmapped
 * gfn is 0 (the walker's -EAGAIN is dropped without KVM_PGTABLE_WALK_HANDLE_FAULT).
 */
export const __pkvm_host_relax_perms_guest = (s: State, a: ArgsOf<'__pkvm_host_relax_perms_guest'>): number =>
  onLoadedVm(s, a.vm, (vm) => {
    const gfn = ipaPfn(a.gfn);
    if (!assertHostSharedGuest(s, vm, gfn, 1)) return HYP_PANIC;
    const p = a.prot;
    updateLeaves(vm, gfn, 1, (m) => ({ ...m, prot: { r: m.prot.r || p.r, w: m.prot.w || p.w, x: m.prot.x || p.x } }));
    return 0;
  });

/** The calls on a range of a VM named by handle: get_np_pkvm_hyp_vm, the size check, the assertion. */
function onGuestRange(s: State, a: { vm: number; gfn: number; nr_pages: number }, act: (vm: Vm, gfn: number) => number): number {
  return onVm(s, a.vm, (vm) => {
    const gfn = ipaPfn(a.gfn);
    if (!transitionSizeOk(a.nr_pages, gfn)) return -EINVAL;
    return assertHostSharedGuest(s, vm, gfn, a.nr_pages) ? act(vm, gfn) : HYP_PANIC;
  });
}

/** kvm_pgtable_stage2_wrprotect: clears W on every leaf of the range; 0 also when nothing is mapped. */
export const __pkvm_host_wrprotect_guest = (s: State, a: ArgsOf<'__pkvm_host_wrprotect_guest'>): number =>
  onGuestRange(s, a, (vm, gfn) => {
    updateLeaves(vm, gfn, a.nr_pages, (m) => ({ ...m, prot: { ...m.prot, w: false } }));
    return 0;
  });

/** kvm_pgtable_stage2_test_clear_young: 1 when a leaf of the range had its access flag set, else 0. */
export const __pkvm_host_test_clear_young_guest = (s: State, a: ArgsOf<'__pkvm_host_test_clear_young_guest'>): number =>
  onGuestRange(s, a, (vm, gfn) => {
    let young = 0;
    updateLeaves(vm, gfn, a.nr_pages, (m) => {
      if (m.young) young = 1;
      return a.mkold ? { ...m, young: false } : m;
    });
    return young;
  });

/** kvm_pgtable_stage2_mkyoung: sets the access flag of the gfn's leaf, if mapped; always 0. */
export const __pkvm_host_mkyoung_guest = (s: State, a: ArgsOf<'__pkvm_host_mkyoung_guest'>): number =>
  onLoadedVm(s, a.vm, (vm) => {
    const gfn = ipaPfn(a.gfn);
    if (!assertHostSharedGuest(s, vm, gfn, 1)) return HYP_PANIC;
    updateLeaves(vm, gfn, 1, (m) => ({ ...m, young: true }));
    return 0;
  });
