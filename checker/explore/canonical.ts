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
//   because every hot page gets the same single-page actions, and only applied when all hot pages
//   lie in one 2 MiB block (so hyp's block mappings treat them alike) and there are at most 5.
import type { Page, State } from '../../model';
import { DEFAULT_PAGE } from '../../model';
import type { Universe } from './alphabet';

const MAX_PERMUTED_PAGES = 5;

function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  const out: number[][] = [];
  for (const rest of permutations(n - 1)) for (let i = 0; i <= rest.length; i++) out.push([...rest.slice(0, i), n - 1, ...rest.slice(i)]);
  return out;
}

export class Canonicalizer {
  /** Each permutation maps hot page index j to its new index perm[j]. */
  private readonly perms: number[][];
  private readonly hotIndex = new Map<number, number>();

  constructor(
    private readonly u: Universe,
    readonly symmetry: boolean,
  ) {
    u.hot.forEach((p, i) => this.hotIndex.set(p, i));
    const permute = symmetry && u.hotInOneBlock && u.hot.length <= MAX_PERMUTED_PAGES;
    this.perms = permute ? permutations(u.hot.length) : [u.hot.map((_, i) => i)];
  }

  /** Whether page permutations are applied (VM renaming is applied whenever `symmetry` is). */
  get pageSymmetry(): boolean {
    return this.perms.length > 1;
  }

  /** A string equal for two states exactly when they are the same up to the symmetries in use. */
  key(s: State): string {
    const vmName = new Map<number, string>();
    for (const [h, vm] of s.vms) {
      const slot = this.u.slots.indexOf(vm.first);
      vmName.set(h, this.symmetry ? `s${slot}` : `s${slot}h${h}`);
    }
    let best: string | null = null;
    for (const perm of this.perms) {
      const k = this.encode(s, perm, vmName);
      if (best === null || k < best) best = k;
    }
    return best!;
  }

  private encode(s: State, perm: readonly number[], vmName: Map<number, string>): string {
    const pfnName = (pfn: number): string => {
      const i = this.hotIndex.get(pfn);
      return i === undefined ? pfn.toString(36) : `#${perm[i]}`;
    };
    const pageCode = (p: Page): string =>
      `${p.owner === 'host' ? 'H' : 'Y'}${typeof p.use === 'number' ? (vmName.get(p.use) ?? `?${p.use}`) : p.use[0]}${p.hyp ? 'y' : ''}${p.ffa ? 'f' : ''}${p.guests}.${p.pins}`;
    const hotCodes: string[] = new Array<string>(this.u.hot.length);
    this.u.hot.forEach((pfn, j) => (hotCodes[perm[j]] = pageCode(s.pages.get(pfn) ?? DEFAULT_PAGE)));
    let out = hotCodes.join(',');
    for (let i = this.u.hot.length; i < this.u.relevant.length; i++) out += `,${pageCode(s.pages.get(this.u.relevant[i]) ?? DEFAULT_PAGE)}`;
    const vms: string[] = [];
    for (const [h, vm] of s.vms) {
      const gfns = [...vm.gfns].sort((a, b) => a[0] - b[0]).map(([g, m]) => `${g}>${pfnName(m.pfn)}/${m.nr}/${m.prot.r ? 'R' : ''}${m.prot.w ? 'W' : ''}${m.prot.x ? 'X' : ''}`);
      vms.push(`${vmName.get(h)}:${vm.nr}[${gfns.join(' ')}]`);
    }
    vms.sort();
    const f = s.faults;
    return `${out}|${vms.join(';')}|${f.entries.map(pfnName).join(',')}${f.warned ? '!' : ''}${f.dropped}`;
  }
}

/** cyrb53: a fast 53-bit string hash; states are stored as these numbers (hash compaction). */
export function hash53(str: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < str.length; i++) {
    const ch = str.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}
