// Generators of call sequences. A generated step is abstract: a call name and a few random draws.
// The draws are resolved into concrete arguments against the live model when the step runs (so a
// "pick a page hyp borrows" draw finds one if there is one), and the concrete step is what the
// runner executes and a trace stores. Shrinking moves draws toward 0, i.e. toward the hot set.
//
// Each ownership call is one rule in OWNERSHIP_RULES: its weight in a sequence, the names of the
// random words it reads, and how they become arguments (as Hypothesis puts a rule's strategies next
// to the rule). Every step carries the same six words whatever its call, so the draws, and hence
// the sequence a seed gives, do not depend on how the rules read them.
import fc from 'fast-check';
import { GUEST_ATTRIBUTE_CALLS, GUEST_SHARE_CALLS, type CallName, type Prot } from '../types/calls';
import { GUEST_IPA_PFNS, PA_PFNS, PTRS_PER_TABLE, VM_MIN_PAGES, VM_VCPUS, type MachineConfig } from '../types/config';
import { hostState, hypState, page, type GuestMapping, type Page, type State } from '../model/state';
import type { TraceStep, VmRef } from './vocabulary';

export interface AbstractStep {
  readonly call: CallName;
  readonly d: readonly number[];
  /** A step its area's generator made concrete already (it needs nothing from the live model). */
  readonly fixed?: TraceStep;
}

// ---- reading a random word ----------------------------------------------------------------------

/** True for one draw in `n`. */
const oneIn = (n: number, d: number): boolean => d % n === 0;
/** An integer in [lo, hi]. */
const between = (lo: number, hi: number, d: number): number => lo + (d % (hi - lo + 1));
/** One of `choices`. */
const oneOf = <T>(choices: readonly T[], d: number): T => choices[d % choices.length];

/**
 * Percentages that split a draw into kinds: the draw's `d % 100` picks the kind (cumulative bounds
 * below), and the rest of it, `floor(d / 100)`, picks within the kind.
 */
const percent = (d: number): number => d % 100;
const restOf = (d: number): number => Math.floor(d / 100);

// ---- pages, counts, VMs, gfns -------------------------------------------------------------------

/** What the resolver knows besides the model: the sequence so far. */
export interface ResolveContext {
  readonly config: MachineConfig;
  /** Pfns named by earlier steps of this sequence (the pages whose state the sequence changed). */
  readonly recent: number[];
  /** Pfns the host wrote in this sequence (a host_access write that succeeded). */
  readonly written: number[];
  /** For each live VM handle, the 1-based step that created it. */
  readonly vmSteps: Map<number, number>;
  /** hotPages(config), computed once. */
  readonly hot: readonly number[];
  /** Scratch space for pickPage. */
  readonly scratch: number[];
}

export const newContext = (config: MachineConfig): ResolveContext => ({ config, recent: [], written: [], vmSteps: new Map(), hot: hotPages(config), scratch: [] });

/** Hot pages: both ends of the first 2 MiB blocks and of the region, where collisions and splits happen. */
export function hotPages(config: MachineConfig): number[] {
  const [first, nr] = config.memory[0];
  const end = first + nr;
  return [first, first + 1, first + 2, first + 3, first + 511, first + 512, first + 513, first + 1024, end - 1, end - nr / 2];
}

function boundaryPage(config: MachineConfig, d: number): number {
  const [first, nr] = oneOf(config.memory, d);
  const block = first + PTRS_PER_TABLE * ((d >>> 3) % Math.max(1, nr / PTRS_PER_TABLE));
  return oneOf([first - 1, first, block - 1, block, block + 1, first + nr - 1, first + nr], d >>> 12);
}

/** The first page of a 2 MiB block that lies wholly in a memory region (most are untouched: shareable). */
function anyBlock(config: MachineConfig, d: number): number {
  const [first, nr] = oneOf(config.memory, d);
  const start = Math.ceil(first / PTRS_PER_TABLE) * PTRS_PER_TABLE;
  const blocks = Math.floor((first + nr - start) / PTRS_PER_TABLE);
  return blocks > 0 ? start + PTRS_PER_TABLE * ((d >>> 4) % blocks) : first;
}

function garbagePage(config: MachineConfig, d: number): number {
  const [first, nr] = config.memory[0];
  return oneOf([0, 0x1000, first + nr + 100, PA_PFNS - 1, PA_PFNS, 2 ** 40, 2 ** 52], d);
}

/**
 * pickPage's kinds, as cumulative percentages: a page of this sequence in the wanted state (when the
 * rule wants one and there is one), a hot or recent page (more of them when a state is wanted), a
 * page at a region or block boundary, garbage, else uniform in memory.
 */
const PAGE_KINDS = { wanted: 60, hot: 45, hotWhenWanted: 70, boundary: 80, garbage: 88 } as const;

/** A page: hot, interesting by state (from this sequence's pages), at a boundary, garbage or uniform. */
export function pickPage(ctx: ResolveContext, model: State, d: number, wanted?: (p: Page) => boolean): number {
  const kind = percent(d);
  const rest = restOf(d);
  if (wanted && kind < PAGE_KINDS.wanted) {
    // One of this sequence's pages in the wanted state, if any is.
    const matches = ctx.scratch;
    matches.length = 0;
    for (const pfn of ctx.recent) if (wanted(page(model, pfn))) matches.push(pfn);
    if (matches.length > 0) return oneOf(matches, rest);
  }
  if (kind < PAGE_KINDS.hot || (wanted && kind < PAGE_KINDS.hotWhenWanted)) {
    // A third of these revisit a page this sequence named.
    return ctx.recent.length > 0 && oneIn(3, rest) ? oneOf(ctx.recent, rest) : oneOf(ctx.hot, rest);
  }
  if (kind < PAGE_KINDS.boundary) return boundaryPage(ctx.config, rest);
  if (kind < PAGE_KINDS.garbage) return garbagePage(ctx.config, rest);
  const [first, nr] = oneOf(ctx.config.memory, rest);
  return first + (rest % nr);
}

/** pickCount's kinds, as cumulative percentages; the rest run to the region's end. */
const COUNT_KINDS = { one: 66, small: 81, block: 84, zero: 90, huge: 95 } as const;

/** nr_pages: mostly 1, some small runs, whole blocks, zero, enormous, and "to the region's end (+1)". */
export function pickCount(ctx: ResolveContext, pfn: number, d: number): number {
  const kind = percent(d);
  const small = between(2, 8, d >>> 8);
  if (kind < COUNT_KINDS.one) return 1;
  if (kind < COUNT_KINDS.small) return small;
  if (kind < COUNT_KINDS.block) return PTRS_PER_TABLE;
  if (kind < COUNT_KINDS.zero) return 0;
  if (kind < COUNT_KINDS.huge) return oneOf([2 ** 32, 2 ** 50, PA_PFNS], d >>> 8);
  // Up to the region's end, or one page past it, when that is near: where range checks bite.
  const region = ctx.config.memory.find(([f, n]) => pfn >= f && pfn < f + n);
  const toEnd = region ? region[0] + region[1] - pfn : 0;
  return toEnd > 0 && toEnd <= 16 ? toEnd + between(0, 1, d >>> 8) : small;
}

const PROTS: readonly Prot[] = [0, 1, 2, 3, 4, 5, 6, 7].map((b) => ({ r: (b & 4) !== 0, w: (b & 2) !== 0, x: (b & 1) !== 0 }));
/** Handles no live VM has: unused slots' handles and non-handles. */
const BAD_HANDLES = [0, 0x1000, 0x1001, 0x10ff];

/** A live VM (as a reference to the step that created it), or one time in ten a bad handle. */
function pickVm(ctx: ResolveContext, model: State, d: number): number | VmRef {
  const live = [...model.vms.keys()];
  if (live.length === 0 || d % 10 === 9) return oneOf(BAD_HANDLES, d >>> 4);
  // Half the time the newest VM, whose tables are not made yet (its first share takes them from its pool).
  const handle = oneIn(2, d >>> 12) ? live[live.length - 1] : oneOf(live, d >>> 4);
  const step = ctx.vmSteps.get(handle);
  return step === undefined ? handle : { ref: step };
}

/**
 * For a call on the loaded vCPU: with a vCPU loaded, half the time no VM (the kernel's call as it is),
 * else a VM as pickVm; with none loaded, one time in eight no VM (-EINVAL), else a VM (which the host
 * loads around the call).
 */
function pickLoadedVm(ctx: ResolveContext, model: State, d: number): number | VmRef | null {
  if (model.loaded !== null ? oneIn(2, d >>> 20) : oneIn(8, d >>> 20)) return null;
  return pickVm(ctx, model, d);
}

/** The handle a VM argument names: a number, a step's result, or (null) the loaded vCPU's VM. */
const vmHandle = (ctx: ResolveContext, vm: number | VmRef | null, model?: State): number | undefined => {
  if (vm === null) return model?.loaded?.vm;
  return typeof vm === 'number' ? vm : [...ctx.vmSteps].find(([, s]) => s === vm.ref)?.[0];
};

/**
 * Grows runs of guest mappings: one draw in three, the gfn after one the VM maps with a page
 * mapping, when that one is free (so 2 MiB ranges come to hold several page mappings); else null.
 */
function pickGuestNeighbour(model: State, vm: number | VmRef | null, ctx: ResolveContext, d: number): number | null {
  if (!oneIn(3, d)) return null;
  const handle = vmHandle(ctx, vm, model);
  const gfns = handle === undefined ? undefined : model.vms.get(handle)?.gfns;
  if (!gfns) return null;
  const next: number[] = [];
  for (const [g, m] of gfns) if (m.nr === 1 && !gfns.has(g + 1)) next.push(g + 1);
  return next.length > 0 ? oneOf(next, d >>> 2) : null;
}

/**
 * A guest range for the calls that take one: `gfn` with the size it was shared with mostly, else
 * the other size (the 2 MiB range around a page mapping, three times in four aligned to it), or
 * rarely a bad size.
 */
function pickGuestRange(ctx: ResolveContext, model: State, vm: number | VmRef | null, gfn: number, d: number): { gfn: number; nr_pages: number } {
  const nr_pages = pickGuestSize(ctx, model, vm, gfn, d);
  const aligned = nr_pages === PTRS_PER_TABLE && !oneIn(4, d >>> 8) ? gfn - (gfn % PTRS_PER_TABLE) : gfn;
  return { gfn: aligned, nr_pages };
}

/** A guest range's size: mostly the size `gfn` was shared with, sometimes the other one, rarely a bad one. */
function pickGuestSize(ctx: ResolveContext, model: State, vm: number | VmRef | null, gfn: number, d: number): number {
  const handle = vmHandle(ctx, vm, model);
  const shared = handle === undefined ? undefined : model.vms.get(handle)?.gfns.get(gfn)?.nr;
  const other = shared === PTRS_PER_TABLE ? 1 : PTRS_PER_TABLE;
  return d % 17 === 1 ? 0 : oneIn(4, d) ? other : (shared ?? 1);
}

/** Gfns at the guest IPA space's edges (the last, and the first past it) and first blocks. */
const EDGE_GFNS = [0, 1, 2, 511, 512, 513, 1024, 2 ** 27, GUEST_IPA_PFNS - 1, GUEST_IPA_PFNS];

/** A gfn: when `mapped`, mostly (3 in 4) one the VM has mapped; else an edge gfn. */
function pickGfn(model: State, vm: number | VmRef | null, ctx: ResolveContext, d: number, mapped: boolean, wanted?: (m: GuestMapping) => boolean): number {
  const handle = vmHandle(ctx, vm, model);
  const map = handle === undefined ? undefined : model.vms.get(handle)?.gfns;
  const gfns = map === undefined ? [] : [...map.keys()];
  if (mapped && gfns.length > 0 && !oneIn(4, d)) {
    // Half of these look for a mapping in the wanted state first (an old one for mkyoung, say).
    const matching = wanted && oneIn(2, d >>> 24) ? gfns.filter((g) => wanted(map!.get(g)!)) : [];
    return oneOf(matching.length > 0 ? matching : gfns, d >>> 2);
  }
  // For a new mapping, three times in four an edge gfn the VM has not mapped yet.
  const free = !mapped && map !== undefined && !oneIn(4, d >>> 26) ? EDGE_GFNS.filter((g) => !map.has(g)) : [];
  return oneOf(free.length > 0 ? free : EDGE_GFNS, d >>> 2);
}

const isOld = (m: GuestMapping): boolean => !m.young;
const isBlockOrWritable = (m: GuestMapping): boolean => m.nr === PTRS_PER_TABLE || m.prot.w;
const isBlockOrOld = (m: GuestMapping): boolean => m.nr === PTRS_PER_TABLE || !m.young;

const lentToHyp = (p: Page) => p.hyp;
const pinned = (p: Page) => p.pins > 0;
const hypFree = (p: Page) => hypState(p) === 'OWNED' && p.use === 'free';
const lentToFfa = (p: Page) => p.ffa;
const hostOwned = (p: Page) => hostState(p) === 'OWNED';
const guestShared = (p: Page) => p.guests > 0;
const hostNoPage = (p: Page) => hostState(p) === 'NOPAGE';

function pickRange(ctx: ResolveContext, model: State, pfn: number, count: number, wanted?: (p: Page) => boolean): { pfn: number; nr_pages: number } {
  const p = pickPage(ctx, model, pfn, wanted);
  return { pfn: p, nr_pages: pickCount(ctx, p, count) };
}

/** The longest run of adjacent pages in the wanted state this far (at most RUN_CAP), starting at `pfn`. */
const RUN_CAP = 16;
function runLength(model: State, pfn: number, wanted: (p: Page) => boolean): number {
  let n = 0;
  while (n < RUN_CAP && pfn + n < PA_PFNS && wanted(page(model, pfn + n))) n++;
  return n;
}

/**
 * A range over a run of pages all in the wanted state, which a ranged call succeeds on only when
 * every page is (per-page checks and effects past the first page show only then). One draw in three
 * of `run`: the run from the first page of this sequence's pages that starts one of two or more
 * (then, one in four, one page past it); else an ordinary range.
 */
function pickRun(ctx: ResolveContext, model: State, pfn: number, count: number, run: number, wanted: (p: Page) => boolean): { pfn: number; nr_pages: number } {
  if (oneIn(3, run)) {
    const starts = ctx.recent.filter((p) => wanted(page(model, p)) && !wanted(page(model, p - 1)) && runLength(model, p, wanted) > 1);
    if (starts.length > 0) {
      const p = oneOf(starts, run >>> 2);
      return { pfn: p, nr_pages: runLength(model, p, wanted) + (oneIn(4, run >>> 8) ? 1 : 0) };
    }
  }
  return pickRange(ctx, model, pfn, count, wanted);
}

/**
 * Grows runs: one draw in three of `grow`, a page next to one of this sequence's pages that is
 * already in the state the call makes (`made`), when that neighbour is in the state it needs
 * (`wanted`); else -1.
 */
function pickNeighbour(ctx: ResolveContext, model: State, grow: number, made: (p: Page) => boolean, wanted: (p: Page) => boolean): number {
  if (!oneIn(3, grow)) return -1;
  const next = ctx.recent.filter((p) => made(page(model, p))).flatMap((p) => [p + 1, p - 1]).filter((p) => wanted(page(model, p)));
  return next.length > 0 ? oneOf(next, grow >>> 2) : -1;
}

// ---- the rules ----------------------------------------------------------------------------------

type OwnershipCall = Exclude<CallName, 'hyp_panic' | '__pkvm_host_stage2_snapshot'>;
type ArgsOf<C extends OwnershipCall> = Extract<TraceStep, { call: C }>['args'];
/** A rule's names for the step's random words, in order; '_' leaves a word unread. */
type Named<N extends readonly string[]> = { readonly [K in Exclude<N[number], '_'>]: number };

interface Rule<C extends OwnershipCall> {
  readonly weight: number;
  /** The arguments, from the step's six random words (`d`) and the live model. */
  args(d: readonly number[], model: State, ctx: ResolveContext): ArgsOf<C>;
}

function rule<C extends OwnershipCall, const N extends readonly string[]>(weight: number, names: N, args: (d: Named<N>, model: State, ctx: ResolveContext) => ArgsOf<C>): Rule<C> {
  // The words it reads, as [name, index] pairs, worked out once: resolving is on the hot path.
  const slots = names.flatMap((name, i) => (name === '_' ? [] : [[name, i] as const]));
  return {
    weight,
    args: (d, model, ctx) => {
      const named: Record<string, number> = {};
      for (const [name, i] of slots) named[name] = d[i];
      return args(named as Named<N>, model, ctx);
    },
  };
}

/** A guest call needs a VM: with none live, four times in five the step creates one instead. */
const needsVm = (model: State, vm: number): boolean => model.vms.size === 0 && !oneIn(5, vm);

/**
 * The ownership calls, in the order fast-check's weighted choice sees them (the order is part of
 * what a seed means). The six words are read under the names each rule gives them; a `state` word
 * picks which page state pickPage looks for.
 */
const OWNERSHIP_RULES: { readonly [C in OwnershipCall]: Rule<C> } = {
  host_access: rule(14, ['pfn', 'write'], (d, model, ctx) => ({ pfn: pickPage(ctx, model, d.pfn, hostNoPage), write: oneIn(2, d.write) })),
  __pkvm_host_share_hyp: rule(10, ['pfn', 'grow'], (d, model, ctx) => {
    const next = pickNeighbour(ctx, model, d.grow, lentToHyp, hostOwned);
    return { pfn: next >= 0 ? next : pickPage(ctx, model, d.pfn, hostOwned) };
  }),
  __pkvm_host_unshare_hyp: rule(8, ['pfn', '_', 'state'], (d, model, ctx) => ({ pfn: pickPage(ctx, model, d.pfn, oneIn(2, d.state) ? pinned : lentToHyp) })),
  __pkvm_host_donate_hyp: rule(10, ['pfn', 'nr'], (d, model, ctx) => pickRange(ctx, model, d.pfn, d.nr, hostOwned)),
  __pkvm_hyp_donate_host: rule(7, ['pfn', 'nr', 'run'], (d, model, ctx) => pickRun(ctx, model, d.pfn, d.nr, d.run, hypFree)),
  __pkvm_host_share_ffa: rule(6, ['pfn', 'nr', 'state'], (d, model, ctx) => pickRange(ctx, model, d.pfn, d.nr, oneIn(2, d.state) ? guestShared : hostOwned)),
  __pkvm_host_unshare_ffa: rule(5, ['pfn', 'nr', 'state', 'run'], (d, model, ctx) => pickRun(ctx, model, d.pfn, d.nr, d.run, oneIn(3, d.state) ? lentToHyp : lentToFfa)),
  hyp_pin_shared_mem: rule(7, ['pfn', 'nr', 'run'], (d, model, ctx) => pickRun(ctx, model, d.pfn, d.nr, d.run, lentToHyp)),
  hyp_unpin_shared_mem: rule(6, ['pfn', 'nr', 'state', 'run'], (d, model, ctx) => pickRun(ctx, model, d.pfn, d.nr, d.run, oneIn(2, d.state) ? lentToHyp : pinned)),
  __pkvm_host_share_guest: rule(9, ['pfn', 'size', 'vm', 'gfn', 'prot'], (d, model, ctx) => {
    const vm = pickLoadedVm(ctx, model, d.vm);
    // One in eight a 2 MiB block (both addresses aligned), half of them a whole block of memory; else
    // a page (the gfn word's top bits pick the state it is looked for in: lent to hyp, refused;
    // shared with guests or owned, shareable), or one in sixteen a bad size. (One in five found the
    // 2 MiB bugs on a seed more, but cost the lockstep bench 7 % of its calls per second.)
    const huge = oneIn(8, d.size);
    const block = (x: number) => x & ~(PTRS_PER_TABLE - 1);
    const pfn = huge ? (oneIn(2, d.size >>> 8) ? anyBlock(ctx.config, d.pfn) : block(pickPage(ctx, model, d.pfn))) : pickPage(ctx, model, d.pfn, oneOf([lentToHyp, guestShared, hostOwned], d.gfn >>> 24));
    const gfn = huge ? block(pickGfn(model, vm, ctx, d.gfn, false)) : pickGuestNeighbour(model, vm, ctx, d.gfn >>> 16) ?? pickGfn(model, vm, ctx, d.gfn, false);
    const nr_pages = huge ? PTRS_PER_TABLE : d.size % 16 === 1 ? oneOf([0, 2, 511], d.size >>> 4) : 1;
    return { pfn, gfn, nr_pages, vm, prot: oneOf(PROTS, d.prot) };
  }),
  __pkvm_host_unshare_guest: rule(7, ['_', 'size', 'vm', 'gfn'], (d, model, ctx) => {
    const vm = pickVm(ctx, model, d.vm);
    return { ...pickGuestRange(ctx, model, vm, pickGfn(model, vm, ctx, d.gfn, true), d.size), vm };
  }),
  // One in five a size below VM_MIN_PAGES (-EINVAL); else up to five pages of stage-2 pool on top.
  // One in two (the `pool` word), the VM's stage-2 pool starts at a page the host wrote in this
  // sequence and still owns: the host's data must not reach the guest's tables.
  __pkvm_init_vm: rule(8, ['pfn', 'size', 'pool'], (d, model, ctx) => {
    const nr_pages = oneIn(5, d.size) ? d.size % 4 : between(VM_MIN_PAGES, VM_MIN_PAGES + 5, d.size >>> 3);
    const dirty = oneIn(2, d.pool) ? ctx.written.filter((p) => hostOwned(page(model, p)) && hostOwned(page(model, p - VM_MIN_PAGES))) : [];
    return { pfn: dirty.length > 0 ? oneOf(dirty, d.pool >>> 2) - VM_MIN_PAGES : pickPage(ctx, model, d.pfn, hostOwned), nr_pages };
  }),
  __pkvm_teardown_vm: rule(3, ['_', '_', '_', '_', '_', 'vm'], (d, model, ctx) => ({ vm: pickVm(ctx, model, d.vm) })),
  // 6.16's attribute calls on shared guest pages, mostly on gfns the VM maps (a 2 MiB share's first
  // gfn or one inside it), and the vCPU load/put that the loaded-vCPU calls act through.
  __pkvm_host_relax_perms_guest: rule(4, ['_', '_', 'vm', 'gfn', 'prot'], (d, model, ctx) => {
    const vm = pickLoadedVm(ctx, model, d.vm);
    return { gfn: pickGfn(model, vm, ctx, d.gfn, true), prot: oneOf(PROTS, d.prot), vm };
  }),
  __pkvm_host_wrprotect_guest: rule(4, ['_', 'size', 'vm', 'gfn'], (d, model, ctx) => {
    const vm = pickVm(ctx, model, d.vm);
    return { ...pickGuestRange(ctx, model, vm, pickGfn(model, vm, ctx, d.gfn, true, isBlockOrWritable), d.size), vm };
  }),
  __pkvm_host_test_clear_young_guest: rule(5, ['_', 'size', 'vm', 'gfn', 'mkold'], (d, model, ctx) => {
    const vm = pickVm(ctx, model, d.vm);
    return { ...pickGuestRange(ctx, model, vm, pickGfn(model, vm, ctx, d.gfn, true, isBlockOrOld), d.size), mkold: oneIn(2, d.mkold), vm };
  }),
  __pkvm_host_mkyoung_guest: rule(4, ['_', '_', 'vm', 'gfn'], (d, model, ctx) => {
    const vm = pickLoadedVm(ctx, model, d.vm);
    return { gfn: pickGfn(model, vm, ctx, d.gfn, true, isOld), vm };
  }),
  // vCPU 0 mostly, the other vCPU, or one past the last (nothing is loaded).
  __pkvm_vcpu_load: rule(3, ['_', 'vcpu', 'vm'], (d, model, ctx) => ({ vm: pickVm(ctx, model, d.vm), vcpu: oneOf([0, 0, 1, VM_VCPUS], d.vcpu) })),
  __pkvm_vcpu_put: rule(2, [], () => ({})),
};

/** Calls that need a VM: with none live, most of the time the step creates one instead. */
const GUEST_CALLS: ReadonlySet<CallName> = new Set<CallName>([...GUEST_SHARE_CALLS, ...GUEST_ATTRIBUTE_CALLS, '__pkvm_vcpu_load']);

/** The draw word a guest call picks its VM with (the third): with no VM, it decides whether to make one. */
const VM_WORD = 2;

const draws = fc.array(fc.nat({ max: 0xffffffff }), { minLength: 6, maxLength: 6 });

/** Ownership calls with their weights: what a sequence is made of. */
export const OWNERSHIP_MIX: readonly [CallName, number][] = Object.entries(OWNERSHIP_RULES).map(([call, r]) => [call as OwnershipCall, r.weight]);

export const stepArb = (mix: readonly [CallName, number][] = OWNERSHIP_MIX): fc.Arbitrary<AbstractStep> =>
  fc.oneof(...mix.map(([call, weight]) => ({ arbitrary: draws.map((d) => ({ call, d })), weight })));

export const sequenceArb = (maxSteps: number, step: fc.Arbitrary<AbstractStep> = stepArb()): fc.Arbitrary<AbstractStep[]> =>
  fc.array(step, { minLength: 1, maxLength: maxSteps, size: 'max' });

const isOwnershipCall = (call: CallName): call is OwnershipCall => call in OWNERSHIP_RULES;

function concrete<C extends OwnershipCall>(call: C, d: readonly number[], model: State, ctx: ResolveContext): TraceStep {
  return { call, args: OWNERSHIP_RULES[call].args(d, model, ctx) } as TraceStep;
}

/** Resolves an abstract step against the live model into a concrete trace step. */
export function resolve(s: AbstractStep, model: State, ctx: ResolveContext): TraceStep {
  if (s.fixed) return s.fixed;
  if (!isOwnershipCall(s.call)) throw new Error(`resolve: ${s.call} is generated by its own area`);
  if (GUEST_CALLS.has(s.call) && needsVm(model, s.d[VM_WORD])) return concrete('__pkvm_init_vm', s.d, model, ctx);
  return concrete(s.call, s.d, model, ctx);
}

/** After a step ran: remember its pages and any VM it created. */
export function observe(ctx: ResolveContext, step: TraceStep, index: number, result: number): void {
  const args = step.args as Partial<{ pfn: number }>;
  if (args.pfn !== undefined && args.pfn < PA_PFNS && !ctx.recent.includes(args.pfn)) ctx.recent.push(args.pfn);
  if (step.call === 'host_access' && step.args.write && result === 0 && !ctx.written.includes(step.args.pfn)) ctx.written.push(step.args.pfn);
  if (step.call === '__pkvm_init_vm' && result > 0) ctx.vmSteps.set(result, index + 1);
}
