// Canonical form of an abstract (model) state, for deduplication. Only the pages an action can
// change are encoded (the universe's `relevant` pfns); everything else never moves. The fault log's
// `aborts` counter is left out (nothing reads it, and it would make the state space infinite: every
// refused access bumps it); the lockstep checks still compare it with hyp's on every transition.
//
// Symmetry reduction (when enabled):
// - VM symmetry: handles are renamed to the VM's donation slot. Which slot number a VM got depends on
//   the order of earlier inits and teardowns, but no call's behaviour depends on the number itself
//   (the alphabet names VMs by slot), so states equal up to handle renaming are merged.
// - Page symmetry: hot pages are permuted and the lexicographically least encoding is kept. Sound
//   because every hot page gets the same single-page actions (and the ranged actions cover all of
//   them at once), but only among hot pages of one 2 MiB block: hyp's block mappings treat pages of
//   one block alike, and pages of two blocks differently (with the straddle geometry the pages below
//   the boundary are permuted among themselves, and those above among themselves, never across).
//   Applied when that makes at most 120 permutations (5 pages in one block). It assumes hyp's
//   behaviour does not depend on a hot page's offset inside its block; the tests check that no
//   catalogued bug is missed and no counterexample gets longer with it.
//
// With --no-symmetry the key keeps handles as they are and pages in place: counts are then
// comparable with other model checkers.
import type { Page, State } from '../../model';
import { PTRS_PER_TABLE, VM_HANDLE_OFFSET } from '../../types/config';
import { blockOf, type Universe } from './alphabet';

/** 5! : all orders of 5 hot pages in one block. */
const MAX_PERMUTATIONS = 120;

function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  const out: number[][] = [];
  for (const rest of permutations(n - 1)) for (let i = 0; i <= rest.length; i++) out.push([...rest.slice(0, i), n - 1, ...rest.slice(i)]);
  return out;
}

/**
 * The permutations of indices 0..groups.length-1 that keep every index inside its group (`groups`
 * lists a group id per index, equal ids adjacent): the product of each group's permutations.
 */
function groupPermutations(groups: readonly number[]): number[][] {
  let out: number[][] = [[]];
  for (let start = 0; start < groups.length; ) {
    let end = start;
    while (end < groups.length && groups[end] === groups[start]) end++;
    const within = permutations(end - start).map((p) => p.map((j) => j + start));
    out = out.flatMap((prefix) => within.map((p) => [...prefix, ...p]));
    start = end;
  }
  return out;
}

const factorial = (n: number): number => (n <= 1 ? 1 : n * factorial(n - 1));

/** Hot pages are named by index in the key; other pfns by value, offset past any index. */
const PFN_BASE = 1 << 8;

/**
 * Encodes states as vectors of small integers (no strings: this runs on every transition) and keys
 * them by a hash of the lexicographically least vector over the symmetries in use.
 */
export class Canonicalizer {
  /** Each permutation maps hot page index j to its new index perm[j] (inside j's 2 MiB block). */
  private readonly perms: number[][];
  /** Per hot page index, whether it lies in the same 2 MiB block as the previous one. */
  private readonly sameBlockAsPrevious: boolean[];
  private readonly hotIndex = new Map<number, number>();
  private best: number[] = [];
  /** Per relevant pfn, the shape term of its code (computed once per key, not per permutation). */
  private readonly shapes: number[] = [];
  private cur: number[] = [];
  /** Scratch: the hot pages' codes, and the same placed by a permutation. */
  private readonly codes: number[] = [];
  private readonly sorted: number[] = [];
  /** Scratch: one VM's gfns, sorted. */
  private readonly gfns: number[] = [];

  /**
   * `shape`, when given, adds a small integer per relevant pfn for hyp state the model does not
   * determine (the lazily built host stage-2: see bfs.ts); it moves with its page under permutations.
   * It fills `out[i]` for each `pfns[i]` (all at once, so it can walk a 2 MiB block once, not 512 times).
   */
  constructor(
    private readonly u: Universe,
    readonly symmetry: boolean,
    private readonly shape: ((pfns: readonly number[], out: number[]) => void) | null = null,
  ) {
    u.hot.forEach((p, i) => this.hotIndex.set(p, i));
    const groups = u.hot.map(blockOf);
    this.sameBlockAsPrevious = groups.map((g, i) => i > 0 && g === groups[i - 1]);
    const count = groups.reduce((n, g, i) => n * (this.sameBlockAsPrevious[i] ? 1 : factorial(groups.filter((h) => h === g).length)), 1);
    const permute = symmetry && count <= MAX_PERMUTATIONS;
    this.perms = permute ? groupPermutations(groups) : [u.hot.map((_, i) => i)];
  }

  /** Whether page permutations are applied (VM renaming is applied whenever `symmetry` is). */
  get pageSymmetry(): boolean {
    return this.perms.length > 1;
  }

  /** A 53-bit key, equal for two states that are the same up to the symmetries in use. */
  key(s: State): number {
    const { relevant } = this.u;
    if (this.shape !== null) {
      this.shape(relevant, this.shapes);
      for (let i = 0; i < relevant.length; i++) this.shapes[i] *= 2 ** 40;
    }
    // The least encoding starts with the hot pages' codes in ascending order, so only permutations
    // that sort them can give it: the others are skipped before encoding the rest of the state.
    const codes = this.codes;
    for (let j = 0; j < this.u.hot.length; j++) codes[j] = this.pageCode(j, s.pages.get(this.u.hot[j]));
    let bestLen = -1;
    for (const perm of this.perms) {
      if (this.perms.length > 1 && !sortsCodes(perm, codes, this.sorted, this.sameBlockAsPrevious)) continue;
      const n = this.encode(s, perm, this.cur);
      if (bestLen < 0 || less(this.cur, n, this.best, bestLen)) {
        [this.best, this.cur] = [this.cur, this.best];
        bestLen = n;
      }
    }
    return hashInts(this.best, bestLen);
  }

  /**
   * A page as one integer: owner, use (VM pages as "a VM": with the donation ranges fixed per slot,
   * the pfn already says which; without symmetry the handle itself), borrowers, guest count, pins.
   */
  private pageCode(i: number, p: Page | undefined): number {
    const extra = this.shape === null ? 0 : this.shapes[i];
    if (p === undefined) return extra;
    const use = p.use === 'free' ? 0 : p.use === 'hyp' ? 1 : this.symmetry ? 2 : 3 + p.use - VM_HANDLE_OFFSET;
    return extra + 1 + (p.owner === 'host' ? 0 : 1) + 2 * ((p.hyp ? 1 : 0) + 2 * ((p.ffa ? 1 : 0) + 2 * (p.pins + 1024 * (p.guests + 1024 * use))));
  }

  private pfnName(pfn: number, perm: readonly number[]): number {
    const i = this.hotIndex.get(pfn);
    return i === undefined ? PFN_BASE + pfn : perm[i];
  }

  private encode(s: State, perm: readonly number[], out: number[]): number {
    const { hot, relevant, slots } = this.u;
    for (let j = 0; j < hot.length; j++) out[perm[j]] = this.pageCode(j, s.pages.get(hot[j]));
    let n = hot.length;
    // The shared block's pages (the last 512 relevant ones) run-length encoded as (code, count) pairs:
    // they mostly change together, and the pairs still name every page (their counts add up to 512).
    const plain = this.u.block === null ? relevant.length : relevant.length - PTRS_PER_TABLE;
    for (let i = hot.length; i < plain; i++) out[n++] = this.pageCode(i, s.pages.get(relevant[i]));
    for (let i = plain; i < relevant.length; i++) {
      const code = this.pageCode(i, s.pages.get(relevant[i]));
      if (i > plain && out[n - 2] === code) out[n - 1]++;
      else {
        out[n++] = code;
        out[n++] = 1;
      }
    }
    // VMs in slot order; each with its size, handle (without symmetry) and sorted guest mappings.
    for (let slot = 0; slot < slots.length; slot++) {
      let found = false;
      for (const [h, vm] of s.vms) {
        if (vm.first !== slots[slot]) continue;
        found = true;
        out[n++] = vm.nr;
        out[n++] = this.symmetry ? 0 : h;
        out[n++] = vm.gfns.size;
        const gfns = this.gfns;
        gfns.length = 0;
        // A 512-page mapping as its first gfn alone: its 512 gfns are made and removed together,
        // with consecutive pfns, so the first names them all.
        for (const [g, m] of vm.gfns) if (m.nr !== PTRS_PER_TABLE || g % PTRS_PER_TABLE === 0) gfns.push(g);
        if (gfns.length > 1) gfns.sort(byNumber);
        for (const g of gfns) {
          const m = vm.gfns.get(g)!;
          out[n++] = g;
          out[n++] = this.pfnName(m.pfn, perm);
          out[n++] = m.nr * 16 + (m.young ? 8 : 0) + (m.prot.r ? 4 : 0) + (m.prot.w ? 2 : 0) + (m.prot.x ? 1 : 0);
        }
      }
      if (!found) out[n++] = -1;
      // The loaded vCPU, by its VM's slot (so VM renaming keeps it) and index.
      if (s.loaded !== null && s.vms.get(s.loaded.vm)?.first === slots[slot]) out[n++] = -2 - s.loaded.vcpu;
    }
    const f = s.faults;
    out[n++] = f.entries.length;
    for (const e of f.entries) out[n++] = this.pfnName(e, perm);
    out[n++] = f.warned ? 1 : 0;
    out[n++] = f.dropped;
    return n;
  }
}

const byNumber = (a: number, b: number): number => a - b;

/** Whether `perm` (page j to position perm[j]) puts `codes` in ascending order inside each block. */
function sortsCodes(perm: readonly number[], codes: readonly number[], placed: number[], sameBlockAsPrevious: readonly boolean[]): boolean {
  for (let j = 0; j < perm.length; j++) placed[perm[j]] = codes[j];
  for (let k = 1; k < perm.length; k++) if (sameBlockAsPrevious[k] && placed[k - 1] > placed[k]) return false;
  return true;
}

function less(a: readonly number[], an: number, b: readonly number[], bn: number): boolean {
  const n = Math.min(an, bn);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return an < bn;
}

/** A 53-bit hash of the first `n` integers of `v` (cyrb53's mixing over 32-bit halves). */
export function hashInts(v: readonly number[], n: number): number {
  let h1 = 0xdeadbeef ^ n;
  let h2 = 0x41c6ce57 ^ n;
  for (let i = 0; i < n; i++) {
    const x = v[i];
    const lo = x | 0;
    const hi = (x / 4294967296) | 0;
    h1 = Math.imul(h1 ^ lo, 2654435761);
    h2 = Math.imul(h2 ^ lo, 1597334677);
    h1 = Math.imul(h1 ^ hi, 2246822507);
    h2 = Math.imul(h2 ^ hi, 3266489909);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}
