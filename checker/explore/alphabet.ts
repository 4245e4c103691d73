// The explorer's finite call alphabet: every ownership call instantiated over a few "hot" pages, a
// few VM slots (each with a fixed donation range and G guest frames) and a garbage argument or two.
// An action is resolved against the current model state (a VM slot becomes the handle of the VM
// created from that slot's donation, if any) and may be disabled (pins are capped, so the state
// space is finite).
import { hex } from '../vocabulary';
import type { CallName, Prot } from '../../types/calls';
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

export interface AlphabetOptions {
  readonly config?: MachineConfig;
  readonly pages: number;
  readonly vms: number;
  readonly gfns: number;
  readonly maxPins: number;
  /** Calls to instantiate (default: all of EXPLORE_CALLS). */
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
  /** Hot pages lie in one 2 MiB block, so hyp's block logic treats them alike (page symmetry is sound). */
  readonly hotInOneBlock: boolean;
}

const RW: Prot = { r: true, w: true, x: false };
/** A handle no VM ever gets (past the last slot): calls naming it fail. */
export const GARBAGE_HANDLE = VM_HANDLE_OFFSET + MAX_VMS;
/** An MMIO pfn (below the default memory region). */
const MMIO_PFN = 0x1000;

export function universe(o: AlphabetOptions): Universe {
  const config = o.config ?? DEFAULT_CONFIG;
  const [base, size] = config.memory[0];
  const slotPages = VM_MIN_PAGES + 1;
  const slotBase = base + Math.max(64, o.pages);
  if (o.pages < 1 || slotBase + o.vms * slotPages > base + size / 2) throw new Error(`explore: ${o.pages} pages and ${o.vms} VMs do not fit the first memory region`);
  const hot = Array.from({ length: o.pages }, (_, i) => base + i);
  const slots = Array.from({ length: o.vms }, (_, v) => slotBase + v * slotPages);
  const relevant = [...hot, ...slots.flatMap((f) => Array.from({ length: slotPages }, (_, i) => f + i))];
  const block = (p: number) => Math.floor(p / PTRS_PER_TABLE);
  return { config, hot, slots, slotPages, relevant, hotInOneBlock: hot.every((p) => block(p) === block(hot[0])) };
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
  u.slots.forEach((first, v) => {
    add('__pkvm_init_vm', `init_vm slot ${v}`, fixed({ call: '__pkvm_init_vm', args: { pfn: first, nr_pages: u.slotPages } }));
    add('__pkvm_teardown_vm', `teardown_vm slot ${v}`, (s) => ({ call: '__pkvm_teardown_vm', args: { vm: slotHandle(s, u, v) } }));
    add('host_access', `access ${hex(first)} r`, fixed({ call: 'host_access', args: { pfn: first, write: false } }));
    for (let gfn = 0; gfn < o.gfns; gfn++) {
      for (const pfn of u.hot)
        add('__pkvm_host_share_guest', `share_guest ${hex(pfn)} gfn ${gfn} slot ${v}`, (s) => ({
          call: '__pkvm_host_share_guest',
          args: { pfn, gfn, nr_pages: 1, vm: slotHandle(s, u, v), prot: RW },
        }));
      add('__pkvm_host_unshare_guest', `unshare_guest gfn ${gfn} slot ${v}`, (s) => ({ call: '__pkvm_host_unshare_guest', args: { gfn, nr_pages: 1, vm: slotHandle(s, u, v) } }));
    }
  });
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
  add('__pkvm_host_share_guest', 'share_guest no vm', fixed({ call: '__pkvm_host_share_guest', args: { pfn: base, gfn: 0, nr_pages: 1, vm: GARBAGE_HANDLE, prot: RW } }));
  return { universe: u, actions };
}
