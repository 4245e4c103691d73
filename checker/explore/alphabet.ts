// The explorer's finite call alphabet: every ownership call instantiated over a few "hot" pages, a
// few VM slots (each with a fixed donation range and G guest frames) and a garbage argument or two.
// An action is resolved against the current model state (a VM slot becomes the handle of the VM
// created from that slot's donation, if any) and may be disabled (pins are capped, so the state
// space is finite).
//
// Geometry (where those pages lie; `--geometry`): by default the hot pages start the first memory
// region, inside one 2 MiB block, and the VM slots start 64 pages further on. Features, combinable:
// - straddle: the hot pages straddle a 2 MiB boundary, half (rounded up) below it and the rest above.
// - near: the VM slots start right after the last hot page (adjacent pfns, same 2 MiB block), and
//   ranged calls also cover all hot pages plus the first page of slot 0 (a VM's page when one exists).
// - block: a 2 MiB-aligned block of 512 host pages, touched only as a whole: shared with each VM slot
//   at gfn 0 (nr_pages 512, so it collides with the single-page shares at gfns 0..G-1) and unshared,
//   and a host access to its first page (which lets hyp map it as one block in the host stage-2).
//   Its pages stay host-owned and change together (lent to 0, 1, .. VMs), so the block adds a few
//   states, not 512 pages' worth; all 512 are `relevant`, since the snapshots restore and the keys
//   encode exactly the relevant pages.
import { hex } from '../vocabulary';
import { GUEST_ATTRIBUTE_CALLS, VCPU_CALLS, type CallName, type Prot } from '../../types/calls';
import { DEFAULT_CONFIG, MAX_VMS, PTRS_PER_TABLE, VM_HANDLE_OFFSET, VM_MIN_PAGES, type MachineConfig } from '../../types/config';
import { page, type State } from '../../model';
import type { TraceStep } from '../vocabulary';

/** The ownership calls the explorer knows (the snapshot and unwinder areas have their own checkers). */
export const EXPLORE_CALLS: readonly CallName[] = [
  '__pkvm_host_share_hyp',
  '__pkvm_host_unshare_hyp',
  '__pkvm_host_donate_hyp',
  '__pkvm_hyp_donate_host',
  '__pkvm_host_share_ffa',
  '__pkvm_host_unshare_ffa',
  'hyp_pin_shared_mem',
  'hyp_unpin_shared_mem',
  '__pkvm_host_share_guest',
  '__pkvm_host_unshare_guest',
  '__pkvm_init_vm',
  '__pkvm_teardown_vm',
  'host_access',
];

/**
 * Every call the explorer can instantiate: also 6.16's attribute calls on shared guest pages and the
 * vCPU load/put they act through, which the default alphabet leaves out (its state counts are the
 * SPIN-comparable ones); `--calls all` or their names add them.
 */
export const ALL_EXPLORE_CALLS: readonly CallName[] = [...EXPLORE_CALLS, ...GUEST_ATTRIBUTE_CALLS, ...VCPU_CALLS];

/** Geometry features (see the top of this file); none is the default geometry. */
export const GEOMETRY_FEATURES = ['straddle', 'near', 'block'] as const;
export type GeometryFeature = (typeof GEOMETRY_FEATURES)[number];

export interface AlphabetOptions {
  readonly config?: MachineConfig;
  /** Where the hot pages, the VM slots and a shared block lie (default: none of the features). */
  readonly geometry?: readonly GeometryFeature[];
  readonly pages: number;
  readonly vms: number;
  readonly gfns: number;
  readonly maxPins: number;
  /** Calls to instantiate (default: EXPLORE_CALLS). */
  readonly calls?: readonly CallName[] | null;
}

/** One letter of the alphabet: resolves to a concrete step in a model state, or null when disabled. */
export interface Action {
  readonly call: CallName;
  readonly label: string;
  resolve(s: State): TraceStep | null;
}

/** Where the explored pages live; `relevant` is every pfn an action can change (the rest never moves). */
export interface Universe {
  readonly config: MachineConfig;
  readonly hot: readonly number[];
  /** First pfn of each VM slot's donation, and its size. */
  readonly slots: readonly number[];
  readonly slotPages: number;
  readonly relevant: readonly number[];
  /** Hot pages lie in one 2 MiB block (false with the straddle geometry). */
  readonly hotInOneBlock: boolean;
  /** First pfn of the 2 MiB block shared with guests as a whole (the block geometry), else null. */
  readonly block: number | null;
  /** The geometry features in use, in GEOMETRY_FEATURES order. */
  readonly geometry: readonly GeometryFeature[];
}

const RW: Prot = { r: true, w: true, x: false };
/** What relax_perms asks for: exec, which the RW shares lack (relax only ever adds). */
const X: Prot = { r: false, w: false, x: true };
/** A handle no VM ever gets (past the last slot): calls naming it fail. */
export const GARBAGE_HANDLE = VM_HANDLE_OFFSET + MAX_VMS;
/** An MMIO pfn (below the default memory region). */
const MMIO_PFN = 0x1000;

/** The 2 MiB block (as a block number) holding `pfn`. */
export const blockOf = (pfn: number): number => Math.floor(pfn / PTRS_PER_TABLE);

const alignUp = (pfn: number): number => Math.ceil(pfn / PTRS_PER_TABLE) * PTRS_PER_TABLE;

export function universe(o: AlphabetOptions): Universe {
  const config = o.config ?? DEFAULT_CONFIG;
  const geometry = GEOMETRY_FEATURES.filter((f) => o.geometry?.includes(f));
  const has = (f: GeometryFeature) => geometry.includes(f);
  const [base, size] = config.memory[0];
  // Everything lies in the first half of the first region: hyp's carve-out takes the end of the
  // largest region, and is never more than half of it (hyp/setup.ts).
  const limit = base + size / 2;
  const slotPages = VM_MIN_PAGES + 1;
  if (has('straddle') && o.pages < 2) throw new Error('explore: --geometry straddle needs at least 2 hot pages (--pages 2 or more)');
  // Straddling: the first 2 MiB boundary with room for ceil(pages / 2) hot pages below it.
  const below = Math.ceil(o.pages / 2);
  const first = has('straddle') ? alignUp(base + below) - below : base;
  const hotEnd = first + o.pages;
  const slotBase = has('near') ? hotEnd : Math.max(first + 64, hotEnd);
  const slotsEnd = slotBase + o.vms * slotPages;
  if (o.pages < 1 || slotsEnd > limit) throw new Error(`explore: ${o.pages} pages and ${o.vms} VMs do not fit the first memory region`);
  const hot = Array.from({ length: o.pages }, (_, i) => first + i);
  const slots = Array.from({ length: o.vms }, (_, v) => slotBase + v * slotPages);
  const relevant = [...hot, ...slots.flatMap((f) => Array.from({ length: slotPages }, (_, i) => f + i))];
  let block: number | null = null;
  if (has('block')) {
    // The first aligned block clear of the hot pages and the slots.
    for (let b = alignUp(base); b + PTRS_PER_TABLE <= limit && block === null; b += PTRS_PER_TABLE) if (b >= slotsEnd || b + PTRS_PER_TABLE <= first) block = b;
    if (block === null) throw new Error('explore: no 2 MiB block free for --geometry block in the first half of the first memory region');
    for (let i = 0; i < PTRS_PER_TABLE; i++) relevant.push(block + i);
  }
  return { config, hot, slots, slotPages, relevant, hotInOneBlock: hot.every((p) => blockOf(p) === blockOf(hot[0])), block, geometry };
}

/** The handle of the VM created from slot `v`'s donation, or a handle no VM has. */
export function slotHandle(s: State, u: Universe, v: number): number {
  for (const [h, vm] of s.vms) if (vm.first === u.slots[v]) return h;
  return GARBAGE_HANDLE;
}

const fixed =
  (step: TraceStep): Action['resolve'] =>
  () =>
    step;

export function buildAlphabet(o: AlphabetOptions): { universe: Universe; actions: Action[] } {
  const u = universe(o);
  const want = new Set(o.calls ?? EXPLORE_CALLS);
  const [base, size] = u.config.memory[0];
  const straddle = { pfn: base + size - 1, nr_pages: 2 };
  const actions: Action[] = [];
  const add = (call: CallName, label: string, resolve: Action['resolve']) => {
    if (want.has(call)) actions.push({ call, label, resolve });
  };
  for (const pfn of u.hot) {
    add('__pkvm_host_share_hyp', `share_hyp ${hex(pfn)}`, fixed({ call: '__pkvm_host_share_hyp', args: { pfn } }));
    add('__pkvm_host_unshare_hyp', `unshare_hyp ${hex(pfn)}`, fixed({ call: '__pkvm_host_unshare_hyp', args: { pfn } }));
    add('__pkvm_host_donate_hyp', `donate_hyp ${hex(pfn)}`, fixed({ call: '__pkvm_host_donate_hyp', args: { pfn, nr_pages: 1 } }));
    add('__pkvm_hyp_donate_host', `hyp_donate_host ${hex(pfn)}`, fixed({ call: '__pkvm_hyp_donate_host', args: { pfn, nr_pages: 1 } }));
    add('__pkvm_host_share_ffa', `share_ffa ${hex(pfn)}`, fixed({ call: '__pkvm_host_share_ffa', args: { pfn, nr_pages: 1 } }));
    add('__pkvm_host_unshare_ffa', `unshare_ffa ${hex(pfn)}`, fixed({ call: '__pkvm_host_unshare_ffa', args: { pfn, nr_pages: 1 } }));
    // Pins are capped: a pin that would take the model's count past maxPins is not enabled.
    add('hyp_pin_shared_mem', `pin ${hex(pfn)}`, (s) => (page(s, pfn).pins < o.maxPins ? { call: 'hyp_pin_shared_mem', args: { pfn, nr_pages: 1 } } : null));
    add('hyp_unpin_shared_mem', `unpin ${hex(pfn)}`, fixed({ call: 'hyp_unpin_shared_mem', args: { pfn, nr_pages: 1 } }));
    for (const write of [false, true]) add('host_access', `access ${hex(pfn)} ${write ? 'w' : 'r'}`, fixed({ call: 'host_access', args: { pfn, write } }));
  }
  // Ranged calls also over all hot pages at once (all-or-nothing). A range over every hot page is
  // unchanged by any permutation of them, so page symmetry stays sound.
  if (u.hot.length > 1) {
    const all = { pfn: u.hot[0], nr_pages: u.hot.length };
    const tag = `${hex(all.pfn)}+${all.nr_pages}`;
    add('__pkvm_host_donate_hyp', `donate_hyp ${tag}`, fixed({ call: '__pkvm_host_donate_hyp', args: all }));
    add('__pkvm_hyp_donate_host', `hyp_donate_host ${tag}`, fixed({ call: '__pkvm_hyp_donate_host', args: all }));
    add('__pkvm_host_share_ffa', `share_ffa ${tag}`, fixed({ call: '__pkvm_host_share_ffa', args: all }));
    add('__pkvm_host_unshare_ffa', `unshare_ffa ${tag}`, fixed({ call: '__pkvm_host_unshare_ffa', args: all }));
    add('hyp_pin_shared_mem', `pin ${tag}`, (s) => (u.hot.every((p) => page(s, p).pins < o.maxPins) ? { call: 'hyp_pin_shared_mem', args: all } : null));
    add('hyp_unpin_shared_mem', `unpin ${tag}`, fixed({ call: 'hyp_unpin_shared_mem', args: all }));
  }
  // Near: ranges over every hot page and the first page of slot 0 (still unchanged by permuting hot pages).
  if (u.geometry.includes('near') && u.slots.length > 0) {
    const over = { pfn: u.hot[0], nr_pages: u.hot.length + 1 };
    const tag = `${hex(over.pfn)}+${over.nr_pages}`;
    add('__pkvm_host_donate_hyp', `donate_hyp ${tag}`, fixed({ call: '__pkvm_host_donate_hyp', args: over }));
    add('__pkvm_hyp_donate_host', `hyp_donate_host ${tag}`, fixed({ call: '__pkvm_hyp_donate_host', args: over }));
    add('__pkvm_host_share_ffa', `share_ffa ${tag}`, fixed({ call: '__pkvm_host_share_ffa', args: over }));
    add('__pkvm_host_unshare_ffa', `unshare_ffa ${tag}`, fixed({ call: '__pkvm_host_unshare_ffa', args: over }));
  }
  // Guest shares are capped too: 6.16's teardown leaves a page's share count as it was (the VM's
  // mappings are orphaned), so share, teardown, init, share... would grow it without end. A page may
  // hold every live mapping the slots can make, plus one orphaned share.
  const maxShares = u.slots.length * o.gfns + 1;
  const shareRoom = (s: State, pfn: number): boolean => page(s, pfn).guests < maxShares;
  u.slots.forEach((first, v) => {
    add('__pkvm_init_vm', `init_vm slot ${v}`, fixed({ call: '__pkvm_init_vm', args: { pfn: first, nr_pages: u.slotPages } }));
    add('__pkvm_teardown_vm', `teardown_vm slot ${v}`, (s) => ({ call: '__pkvm_teardown_vm', args: { vm: slotHandle(s, u, v) } }));
    add('host_access', `access ${hex(first)} r`, fixed({ call: 'host_access', args: { pfn: first, write: false } }));
    for (let gfn = 0; gfn < o.gfns; gfn++) {
      for (const pfn of u.hot)
        add('__pkvm_host_share_guest', `share_guest ${hex(pfn)} gfn ${gfn} slot ${v}`, (s) =>
          shareRoom(s, pfn) ? { call: '__pkvm_host_share_guest', args: { pfn, gfn, nr_pages: 1, vm: slotHandle(s, u, v), prot: RW } } : null,
        );
      add('__pkvm_host_unshare_guest', `unshare_guest gfn ${gfn} slot ${v}`, (s) => ({ call: '__pkvm_host_unshare_guest', args: { gfn, nr_pages: 1, vm: slotHandle(s, u, v) } }));
      // The attribute calls name the slot's VM: the loaded vCPU's VM wins for relax_perms and mkyoung.
      add('__pkvm_host_relax_perms_guest', `relax_perms X gfn ${gfn} slot ${v}`, (s) => ({ call: '__pkvm_host_relax_perms_guest', args: { gfn, prot: X, vm: slotHandle(s, u, v) } }));
      add('__pkvm_host_wrprotect_guest', `wrprotect gfn ${gfn} slot ${v}`, (s) => ({ call: '__pkvm_host_wrprotect_guest', args: { gfn, nr_pages: 1, vm: slotHandle(s, u, v) } }));
      add('__pkvm_host_test_clear_young_guest', `test_clear_young gfn ${gfn} slot ${v}`, (s) => ({
        call: '__pkvm_host_test_clear_young_guest',
        args: { gfn, nr_pages: 1, mkold: true, vm: slotHandle(s, u, v) },
      }));
      add('__pkvm_host_mkyoung_guest', `mkyoung gfn ${gfn} slot ${v}`, (s) => ({ call: '__pkvm_host_mkyoung_guest', args: { gfn, vm: slotHandle(s, u, v) } }));
    }
    for (const vcpu of [0, 1]) add('__pkvm_vcpu_load', `vcpu_load slot ${v} vcpu ${vcpu}`, (s) => ({ call: '__pkvm_vcpu_load', args: { vm: slotHandle(s, u, v), vcpu } }));
  });
  add('__pkvm_vcpu_put', 'vcpu_put', fixed({ call: '__pkvm_vcpu_put', args: {} }));
  // Block: the 512 pages move together, so they add a handful of states, not 512 pages' worth.
  if (u.block !== null) {
    const whole = { pfn: u.block, nr_pages: PTRS_PER_TABLE };
    const tag = `${hex(whole.pfn)}+${PTRS_PER_TABLE}`;
    add('host_access', `access ${hex(whole.pfn)} r`, fixed({ call: 'host_access', args: { pfn: whole.pfn, write: false } }));
    u.slots.forEach((_, v) => {
      add('__pkvm_host_share_guest', `share_guest ${tag} gfn 0 slot ${v}`, (s) =>
        shareRoom(s, whole.pfn) ? { call: '__pkvm_host_share_guest', args: { pfn: whole.pfn, gfn: 0, nr_pages: PTRS_PER_TABLE, vm: slotHandle(s, u, v), prot: RW } } : null,
      );
      add('__pkvm_host_unshare_guest', `unshare_guest gfn 0+${PTRS_PER_TABLE} slot ${v}`, (s) => ({ call: '__pkvm_host_unshare_guest', args: { gfn: 0, nr_pages: PTRS_PER_TABLE, vm: slotHandle(s, u, v) } }));
      add('__pkvm_host_wrprotect_guest', `wrprotect gfn 0+${PTRS_PER_TABLE} slot ${v}`, (s) => ({ call: '__pkvm_host_wrprotect_guest', args: { gfn: 0, nr_pages: PTRS_PER_TABLE, vm: slotHandle(s, u, v) } }));
      add('__pkvm_host_test_clear_young_guest', `test_clear_young gfn 0+${PTRS_PER_TABLE} slot ${v}`, (s) => ({
        call: '__pkvm_host_test_clear_young_guest',
        args: { gfn: 0, nr_pages: PTRS_PER_TABLE, mkold: true, vm: slotHandle(s, u, v) },
      }));
    });
  }
  // Garbage: an MMIO pfn for the single-page calls, a range crossing the region's end for ranged calls.
  add('__pkvm_host_share_hyp', 'share_hyp mmio', fixed({ call: '__pkvm_host_share_hyp', args: { pfn: MMIO_PFN } }));
  add('__pkvm_host_unshare_hyp', 'unshare_hyp mmio', fixed({ call: '__pkvm_host_unshare_hyp', args: { pfn: MMIO_PFN } }));
  add('host_access', 'access mmio w', fixed({ call: 'host_access', args: { pfn: MMIO_PFN, write: true } }));
  add('__pkvm_host_donate_hyp', 'donate_hyp straddle', fixed({ call: '__pkvm_host_donate_hyp', args: straddle }));
  add('__pkvm_hyp_donate_host', 'hyp_donate_host straddle', fixed({ call: '__pkvm_hyp_donate_host', args: straddle }));
  add('__pkvm_host_share_ffa', 'share_ffa straddle', fixed({ call: '__pkvm_host_share_ffa', args: straddle }));
  add('__pkvm_host_unshare_ffa', 'unshare_ffa mmio', fixed({ call: '__pkvm_host_unshare_ffa', args: { pfn: MMIO_PFN, nr_pages: 1 } }));
  add('hyp_pin_shared_mem', 'pin straddle', fixed({ call: 'hyp_pin_shared_mem', args: straddle }));
  add('hyp_unpin_shared_mem', 'unpin mmio', fixed({ call: 'hyp_unpin_shared_mem', args: { pfn: MMIO_PFN, nr_pages: 1 } }));
  add('__pkvm_init_vm', 'init_vm straddle', fixed({ call: '__pkvm_init_vm', args: { pfn: base + size - 2, nr_pages: VM_MIN_PAGES } }));
  // With a vCPU loaded, the handle is ignored and the share goes to the loaded vCPU's VM: capped too.
  add('__pkvm_host_share_guest', 'share_guest no vm', (s) =>
    shareRoom(s, base) ? { call: '__pkvm_host_share_guest', args: { pfn: base, gfn: 0, nr_pages: 1, vm: GARBAGE_HANDLE, prot: RW } } : null,
  );
  return { universe: u, actions };
}
