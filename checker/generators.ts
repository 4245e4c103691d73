// Generators of call sequences. A generated step is abstract: a call name and a few random draws.
// The draws are resolved into concrete arguments against the live model when the step runs (so a
// "pick a page hyp borrows" draw finds one if there is one), and the concrete step is what the
// runner executes and a trace stores. Shrinking moves draws toward 0, i.e. toward the hot set.
import fc from 'fast-check';
import type { CallName, Prot } from '../types/calls';
import { PA_PFNS, PTRS_PER_TABLE, VM_MIN_PAGES, type MachineConfig } from '../types/config';
import { hostState, hypState, page, type Page, type State } from '../model/state';
import type { TraceStep, VmRef } from './vocabulary';

export interface AbstractStep {
  readonly call: CallName;
  readonly d: readonly number[];
  /** A step its area's generator made concrete already (it needs nothing from the live model). */
  readonly fixed?: TraceStep;
}

/** Ownership calls with their weights: what a sequence is made of. */
const OWNERSHIP_MIX: readonly [CallName, number][] = [
  ['host_access', 14],
  ['__pkvm_host_share_hyp', 10],
  ['__pkvm_host_unshare_hyp', 8],
  ['__pkvm_host_donate_hyp', 10],
  ['__pkvm_hyp_donate_host', 7],
  ['__pkvm_host_share_ffa', 6],
  ['__pkvm_host_unshare_ffa', 5],
  ['hyp_pin_shared_mem', 7],
  ['hyp_unpin_shared_mem', 6],
  ['__pkvm_host_share_guest', 9],
  ['__pkvm_host_unshare_guest', 7],
  ['__pkvm_init_vm', 8],
  ['__pkvm_teardown_vm', 3],
];

const draws = fc.array(fc.nat({ max: 0xffffffff }), { minLength: 6, maxLength: 6 });

export const stepArb = (mix: readonly [CallName, number][] = OWNERSHIP_MIX): fc.Arbitrary<AbstractStep> =>
  fc.oneof(...mix.map(([call, weight]) => ({ arbitrary: draws.map((d) => ({ call, d })), weight })));

export const sequenceArb = (maxSteps: number, step: fc.Arbitrary<AbstractStep> = stepArb()): fc.Arbitrary<AbstractStep[]> =>
  fc.array(step, { minLength: 1, maxLength: maxSteps, size: 'max' });

/** What the resolver knows besides the model: the sequence so far. */
export interface ResolveContext {
  readonly config: MachineConfig;
  /** Pfns named by earlier steps of this sequence (the pages whose state the sequence changed). */
  readonly recent: number[];
  /** For each live VM handle, the 1-based step that created it. */
  readonly vmSteps: Map<number, number>;
  /** hotPages(config), computed once. */
  readonly hot: readonly number[];
  /** Scratch space for pickPage. */
  readonly scratch: number[];
}

export const newContext = (config: MachineConfig): ResolveContext => ({ config, recent: [], vmSteps: new Map(), hot: hotPages(config), scratch: [] });

/** Hot pages: both ends of the first 2 MiB blocks and of the region, where collisions and splits happen. */
export function hotPages(config: MachineConfig): number[] {
  const [first, nr] = config.memory[0];
  const end = first + nr;
  return [first, first + 1, first + 2, first + 3, first + 511, first + 512, first + 513, first + 1024, end - 1, end - nr / 2];
}

function boundaryPage(config: MachineConfig, d: number): number {
  const [first, nr] = config.memory[d % config.memory.length];
  const block = first + PTRS_PER_TABLE * ((d >>> 3) % Math.max(1, nr / PTRS_PER_TABLE));
  const choices = [first - 1, first, block - 1, block, block + 1, first + nr - 1, first + nr];
  return choices[(d >>> 12) % choices.length];
}

function garbagePage(config: MachineConfig, d: number): number {
  const [first, nr] = config.memory[0];
  const choices = [0, 0x1000, first + nr + 100, PA_PFNS - 1, PA_PFNS, 2 ** 40, 2 ** 52];
  return choices[d % choices.length];
}

/** A page: hot, interesting by state (from this sequence's pages), at a boundary, garbage or uniform. */
export function pickPage(ctx: ResolveContext, model: State, d: number, wanted?: (p: Page) => boolean): number {
  const kind = d % 100;
  const rest = Math.floor(d / 100);
  if (wanted && kind < 60) {
    // The (rest % matches)-th of this sequence's pages in the wanted state, if any is.
    const matches = ctx.scratch;
    matches.length = 0;
    for (const pfn of ctx.recent) if (wanted(page(model, pfn))) matches.push(pfn);
    if (matches.length > 0) return matches[rest % matches.length];
  }
  if (kind < 45 || (wanted && kind < 70)) {
    const hot = ctx.hot;
    return ctx.recent.length > 0 && rest % 3 === 0 ? ctx.recent[rest % ctx.recent.length] : hot[rest % hot.length];
  }
  if (kind < 80) return boundaryPage(ctx.config, rest);
  if (kind < 88) return garbagePage(ctx.config, rest);
  const [first, nr] = ctx.config.memory[rest % ctx.config.memory.length];
  return first + (rest % nr);
}

/** nr_pages: mostly 1, some small runs, whole blocks, zero, enormous, and "to the region's end (+1)". */
export function pickCount(ctx: ResolveContext, pfn: number, d: number): number {
  const kind = d % 100;
  if (kind < 66) return 1;
  if (kind < 81) return 2 + (d >>> 8) % 7;
  if (kind < 84) return PTRS_PER_TABLE;
  if (kind < 90) return 0;
  if (kind < 95) return [2 ** 32, 2 ** 50, PA_PFNS][(d >>> 8) % 3];
  // Up to the region's end, or one page past it, when that is near: where range checks bite.
  const region = ctx.config.memory.find(([f, n]) => pfn >= f && pfn < f + n);
  const toEnd = region ? region[0] + region[1] - pfn : 0;
  return toEnd > 0 && toEnd <= 16 ? toEnd + ((d >>> 8) % 2) : 2 + (d >>> 8) % 7;
}

const PROTS: readonly Prot[] = [0, 1, 2, 3, 4, 5, 6, 7].map((b) => ({ r: (b & 4) !== 0, w: (b & 2) !== 0, x: (b & 1) !== 0 }));

function pickVm(ctx: ResolveContext, model: State, d: number): number | VmRef {
  const live = [...model.vms.keys()];
  if (live.length === 0 || d % 10 === 9) return [0, 0x1000, 0x1001, 0x10ff][(d >>> 4) % 4];
  const handle = live[(d >>> 4) % live.length];
  const step = ctx.vmSteps.get(handle);
  return step === undefined ? handle : { ref: step };
}

function pickGfn(model: State, vm: number | VmRef, ctx: ResolveContext, d: number, mapped: boolean): number {
  const handle = typeof vm === 'number' ? vm : [...ctx.vmSteps].find(([, s]) => s === vm.ref)?.[0];
  const gfns = handle === undefined ? [] : [...(model.vms.get(handle)?.gfns.keys() ?? [])];
  if (mapped && gfns.length > 0 && d % 4 !== 0) return gfns[(d >>> 2) % gfns.length];
  return [0, 1, 2, 511, 512, 513, 1024, 2 ** 27, 2 ** 28 - 1][(d >>> 2) % 9];
}

const lentToHyp = (p: Page) => p.hyp;
const pinned = (p: Page) => p.pins > 0;
const hypFree = (p: Page) => hypState(p) === 'OWNED' && p.use === 'free';
const lentToFfa = (p: Page) => p.ffa;
const hostOwned = (p: Page) => hostState(p) === 'OWNED';
const guestShared = (p: Page) => p.guests > 0;
const hostNoPage = (p: Page) => hostState(p) === 'NOPAGE';

function pickRange(ctx: ResolveContext, model: State, a: number, b: number, wanted?: (p: Page) => boolean): { pfn: number; nr_pages: number } {
  const pfn = pickPage(ctx, model, a, wanted);
  return { pfn, nr_pages: pickCount(ctx, pfn, b) };
}

/** Resolves an abstract step against the live model into a concrete trace step. */
export function resolve(s: AbstractStep, model: State, ctx: ResolveContext): TraceStep {
  if (s.fixed) return s.fixed;
  const [a, b, c, e, f, g] = s.d;
  switch (s.call) {
    case 'host_access':
      return { call: s.call, args: { pfn: pickPage(ctx, model, a, hostNoPage), write: b % 2 === 0 } };
    case '__pkvm_host_share_hyp':
      return { call: s.call, args: { pfn: pickPage(ctx, model, a, hostOwned) } };
    case '__pkvm_host_unshare_hyp':
      return { call: s.call, args: { pfn: pickPage(ctx, model, a, c % 2 ? lentToHyp : pinned) } };
    case '__pkvm_host_donate_hyp':
      return { call: s.call, args: pickRange(ctx, model, a, b, hostOwned) };
    case '__pkvm_hyp_donate_host':
      return { call: s.call, args: pickRange(ctx, model, a, b, hypFree) };
    case '__pkvm_host_share_ffa':
      return { call: s.call, args: pickRange(ctx, model, a, b, c % 2 ? hostOwned : guestShared) };
    case '__pkvm_host_unshare_ffa':
      return { call: s.call, args: pickRange(ctx, model, a, b, c % 3 ? lentToFfa : lentToHyp) };
    case 'hyp_pin_shared_mem':
      return { call: s.call, args: pickRange(ctx, model, a, b, lentToHyp) };
    case 'hyp_unpin_shared_mem':
      return { call: s.call, args: pickRange(ctx, model, a, b, c % 2 ? pinned : lentToHyp) };
    case '__pkvm_host_share_guest': {
      if (model.vms.size === 0 && c % 5 !== 0) return resolve({ call: '__pkvm_init_vm', d: s.d }, model, ctx); // a guest needs a VM first
      const vm = pickVm(ctx, model, c);
      const huge = b % 8 === 0;
      const pfn = huge ? pickPage(ctx, model, a) & ~(PTRS_PER_TABLE - 1) : pickPage(ctx, model, a, e % 2 ? guestShared : lentToHyp);
      const gfn = huge ? pickGfn(model, vm, ctx, e, false) & ~(PTRS_PER_TABLE - 1) : pickGfn(model, vm, ctx, e, false);
      const nr_pages = huge ? PTRS_PER_TABLE : b % 16 === 1 ? [0, 2, 511][(b >>> 4) % 3] : 1;
      return { call: s.call, args: { pfn, gfn, nr_pages, vm, prot: PROTS[f % 8] } };
    }
    case '__pkvm_host_unshare_guest': {
      if (model.vms.size === 0 && c % 5 !== 0) return resolve({ call: '__pkvm_init_vm', d: s.d }, model, ctx);
      const vm = pickVm(ctx, model, c);
      const gfn = pickGfn(model, vm, ctx, e, true);
      // Mostly the size the gfn was shared with; sometimes the other one (-E2BIG) or a bad one.
      const handle = typeof vm === 'number' ? vm : [...ctx.vmSteps].find(([, st]) => st === vm.ref)?.[0];
      const shared = handle === undefined ? undefined : model.vms.get(handle)?.gfns.get(gfn)?.nr;
      const other = shared === PTRS_PER_TABLE ? 1 : PTRS_PER_TABLE;
      const nr_pages = b % 17 === 1 ? 0 : b % 4 === 0 ? other : (shared ?? 1);
      return { call: s.call, args: { gfn, nr_pages, vm } };
    }
    case '__pkvm_init_vm': {
      const pfn = pickPage(ctx, model, a, hostOwned);
      return { call: s.call, args: { pfn, nr_pages: b % 5 === 0 ? b % 4 : VM_MIN_PAGES + (b >>> 3) % 6 } };
    }
    case '__pkvm_teardown_vm':
      return { call: s.call, args: { vm: pickVm(ctx, model, g) } };
    default:
      throw new Error(`resolve: ${s.call} is generated by its own area`);
  }
}

/** After a step ran: remember its pages and any VM it created. */
export function observe(ctx: ResolveContext, step: TraceStep, index: number, result: number): void {
  const args = step.args as Partial<{ pfn: number }>;
  if (args.pfn !== undefined && args.pfn < PA_PFNS && !ctx.recent.includes(args.pfn)) ctx.recent.push(args.pfn);
  if (step.call === '__pkvm_init_vm' && result > 0) ctx.vmSteps.set(result, index + 1);
}
