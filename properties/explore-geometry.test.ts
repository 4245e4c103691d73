// The explorer's geometries (--geometry): each puts the hot pages, the VM slots and the shared block
// where it says, its actions are in the alphabet and reach the states it is for, page symmetry stays
// inside a 2 MiB block, and each finds a made-up defect the default geometry cannot reach.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CallName } from '../types/calls';
import { DEFAULT_CONFIG, PTRS_PER_TABLE } from '../types/config';
import { hypLayout } from '../hyp/setup';
import { blockOf, buildAlphabet, universe, type AlphabetOptions, type GeometryFeature } from '../checker/explore/alphabet';
import { explore, type ExploreOptions } from '../checker/explore/bfs';
import { ModelEngine } from '../checker/explore/engine';
import { Lockstep } from '../checker/lockstep';
import { OWNERSHIP_BUGS, type HypBug } from '../checker/bugs/ownership';
import { exploreCommand } from '../checker/cli/explore';
import { UsageError } from '../checker/cli/usage';

const opts = (geometry: GeometryFeature[], o: Partial<AlphabetOptions> = {}): AlphabetOptions => ({ pages: 2, vms: 1, gfns: 2, maxPins: 2, geometry, ...o });
const [BASE, SIZE] = DEFAULT_CONFIG.memory[0];
const range = (first: number, n: number) => Array.from({ length: n }, (_, i) => first + i);
const GUEST_CALLS: CallName[] = ['__pkvm_init_vm', '__pkvm_teardown_vm', '__pkvm_host_share_guest', '__pkvm_host_unshare_guest'];

describe('where each geometry puts the pages', () => {
  it('default: hot pages from the region start in one block, VM slots 64 pages on, no block', () => {
    const u = universe(opts([]));
    expect(u.hot).toEqual([BASE, BASE + 1]);
    expect(u.slots).toEqual([BASE + 64]);
    expect(u.hotInOneBlock).toBe(true);
    expect(u.block).toBeNull();
    expect(u.relevant).toEqual([...u.hot, ...range(BASE + 64, u.slotPages)]);
  });

  it.each([2, 3, 4, 5])('straddle, %i pages: contiguous, ceil(P/2) below a 2 MiB boundary and the rest above it', (pages) => {
    const u = universe(opts(['straddle'], { pages }));
    const boundary = u.hot.find((p) => p % PTRS_PER_TABLE === 0)!;
    expect(u.hot).toEqual(range(boundary - Math.ceil(pages / 2), pages));
    expect(new Set(u.hot.map(blockOf)).size).toBe(2);
    expect(u.hotInOneBlock).toBe(false);
    expect(u.hot.filter((p) => p < boundary)).toHaveLength(Math.ceil(pages / 2));
    expect(u.hot[0]).toBeGreaterThanOrEqual(BASE);
    // The slots stay away from the hot pages.
    expect(u.slots[0] - u.hot[pages - 1]).toBeGreaterThan(1);
  });

  it.each([[['near']], [['straddle', 'near']]] as [GeometryFeature[]][])('%j: the first VM slot is the pfn after the last hot page, in its 2 MiB block', (geometry) => {
    for (const vms of [1, 3]) {
      const u = universe(opts(geometry, { vms }));
      const last = u.hot[u.hot.length - 1];
      expect(u.slots[0]).toBe(last + 1);
      expect(blockOf(u.slots[0])).toBe(blockOf(last));
      expect(u.slots).toEqual(range(0, vms).map((v) => last + 1 + v * u.slotPages));
    }
  });

  it.each([[['block']], [['straddle', 'near', 'block']]] as [GeometryFeature[]][])('%j: a free, aligned 2 MiB block of memory, all of it relevant', (geometry) => {
    const u = universe(opts(geometry, { vms: 2 }));
    const block = u.block!;
    expect(block % PTRS_PER_TABLE).toBe(0);
    expect(block >= BASE && block + PTRS_PER_TABLE <= BASE + SIZE).toBe(true);
    const [carve, carveNr] = hypLayout(DEFAULT_CONFIG).carveout;
    expect(block + PTRS_PER_TABLE <= carve || block >= carve + carveNr).toBe(true);
    const others = [...u.hot, ...u.slots.flatMap((f) => range(f, u.slotPages))];
    expect(others.some((p) => p >= block && p < block + PTRS_PER_TABLE)).toBe(false);
    expect(u.relevant).toEqual([...others, ...range(block, PTRS_PER_TABLE)]);
  });

  it('a geometry that cannot be built is an error', () => {
    expect(() => universe(opts(['straddle'], { pages: 1 }))).toThrow(/straddle needs at least 2/);
    // A region of 1,024 pages: its first half is one block, taken by the hot pages.
    expect(() => universe(opts(['block'], { config: { memory: [[BASE, 1024]], pageSize: 4096 } }))).toThrow(/no 2 MiB block free/);
  });
});

describe("each geometry's actions", () => {
  const labels = (o: AlphabetOptions) => buildAlphabet(o).actions.map((a) => a.label);
  const model = new ModelEngine(DEFAULT_CONFIG).model;

  it('the default alphabet has no 512-page action and no range past the hot pages', () => {
    const { universe: u, actions } = buildAlphabet(opts([], { vms: 2 }));
    for (const a of actions) {
      const ts = a.resolve(model);
      if (ts === null || !('nr_pages' in ts.args)) continue;
      expect(ts.args.nr_pages).toBeLessThan(PTRS_PER_TABLE);
      if ('pfn' in ts.args && ts.args.pfn === u.hot[0]) expect(ts.args.nr_pages).toBeLessThanOrEqual(u.hot.length);
    }
  });

  it('near: ranges over every hot page and the first page of slot 0', () => {
    const { universe: u, actions } = buildAlphabet(opts(['near']));
    const over = actions.map((a) => a.resolve(model)).filter((ts) => ts !== null && 'pfn' in ts.args && 'nr_pages' in ts.args && ts.args.pfn === u.hot[0] && ts.args.nr_pages === u.hot.length + 1);
    expect(over.map((ts) => ts!.call).sort()).toEqual(['__pkvm_host_donate_hyp', '__pkvm_host_share_ffa', '__pkvm_host_unshare_ffa', '__pkvm_hyp_donate_host']);
    expect(labels(opts(['near'], { vms: 0 }))).toEqual(labels(opts([], { vms: 0 })));
  });

  it('block: a 512-page share at gfn 0 and its unshare per VM slot, and a read of the block', () => {
    const { universe: u, actions } = buildAlphabet(opts(['block'], { vms: 2 }));
    const steps = actions.map((a) => a.resolve(model)!).filter((ts) => ts !== null);
    const shares = steps.filter((ts) => ts.call === '__pkvm_host_share_guest' && ts.args.nr_pages === PTRS_PER_TABLE);
    expect(shares.map((ts) => ts.args)).toEqual([0, 1].map(() => expect.objectContaining({ pfn: u.block, gfn: 0 })));
    expect(steps.filter((ts) => ts.call === '__pkvm_host_unshare_guest' && ts.args.nr_pages === PTRS_PER_TABLE && ts.args.gfn === 0)).toHaveLength(2);
    expect(steps).toContainEqual({ call: 'host_access', args: { pfn: u.block, write: false } });
  });

  it('block: sharing it puts all 512 pages in one VM (model and hyp agree), unsharing gives them back', () => {
    const { universe: u, actions } = buildAlphabet(opts(['block']));
    const ls = new Lockstep(DEFAULT_CONFIG, []);
    const run = (label: string) => {
      const ts = actions.find((a) => a.label === label)!.resolve(ls.model)!;
      expect(ls.step(ts, ls.results.length)).toBeNull();
      return ls.results[ls.results.length - 1];
    };
    const block = range(u.block!, PTRS_PER_TABLE);
    expect(run('init_vm slot 0')).toBeGreaterThan(0);
    expect(run(`share_guest 0x${u.block!.toString(16)}+512 gfn 0 slot 0`)).toBe(0);
    const [vm] = ls.model.vms.values();
    expect(vm.gfns.size).toBe(PTRS_PER_TABLE);
    expect(block.every((p) => ls.model.pages.get(p)?.guests === 1)).toBe(true);
    // A single-page unshare of a gfn inside the block is refused: the leaf is 2 MiB.
    expect(run('unshare_guest gfn 1 slot 0')).toBeLessThan(0);
    expect(run('unshare_guest gfn 0+512 slot 0')).toBe(0);
    expect(block.every((p) => (ls.model.pages.get(p)?.guests ?? 0) === 0)).toBe(true);
    expect(ls.finish()).toBeNull();
  });
});

describe('what the geometries reach', () => {
  const guests: ExploreOptions = { pages: 1, vms: 1, gfns: 0, maxPins: 1, depth: null, symmetry: true, modelOnly: true, calls: GUEST_CALLS };

  // 6.16's teardown leaves a VM's guest shares behind (the share count stays, docs/semantics.md §7),
  // and the alphabet caps a page's shares at slots x gfns + 1 (here 1): after a teardown of the VM
  // holding the block, the block is orphaned and can never be shared again.
  it('block, one VM: {no VM, VM, VM holding the block} + {no VM, VM} with the block orphaned = 5 model states, in lockstep too', () => {
    for (const modelOnly of [true, false]) {
      const r = explore({ ...guests, geometry: ['block'], modelOnly });
      expect(r.ok && r.complete).toBe(true);
      expect(r.abstractStates).toBe(5);
      expect(r.coverage.__pkvm_host_share_guest).toMatchObject({ '0': expect.any(Number) });
      expect(r.coverage.__pkvm_host_unshare_guest).toMatchObject({ '0': expect.any(Number) });
    }
  });

  // With o orphaned shares and m live mappings of the page, m + o <= 3 (the cap, 2 x 1 + 1): o = 0
  // and 1 allow every slot pair {none, VM, VM mapping it}^2 (9 each, one page shared into both), o = 2
  // all but both mapping (8), o = 3 none mapping (4). The block's cap is 1: 8 pairs, then 4 orphaned.
  it('two VMs at once: the page shared into both, and orphaned shares up to the cap: 9 + 9 + 8 + 4 = 30; the block 8 + 4 = 12', () => {
    expect(explore({ ...guests, vms: 2, gfns: 1 }).abstractStates).toBe(30);
    const block = explore({ ...guests, vms: 2, geometry: ['block'], modelOnly: false });
    expect(block.ok && block.complete).toBe(true);
    expect(block.abstractStates).toBe(12);
  });

  it('straddle: symmetry permutes pages within each block only (4 pages: 15 x 15, not 70, of 625)', () => {
    // Host/hyp/ffa calls, 1 pin: 5 states per page, independent; with symmetry the multisets of each
    // block's two pages (C(6,2) = 15 each), where the default geometry merges all four (C(8,4) = 70).
    const calls: CallName[] = ['__pkvm_host_share_hyp', '__pkvm_host_unshare_hyp', 'hyp_pin_shared_mem', 'hyp_unpin_shared_mem', '__pkvm_host_donate_hyp', '__pkvm_hyp_donate_host', '__pkvm_host_share_ffa', '__pkvm_host_unshare_ffa'];
    const o: ExploreOptions = { pages: 4, vms: 0, gfns: 0, maxPins: 1, depth: null, symmetry: true, modelOnly: true, calls, geometry: ['straddle'] };
    const [reduced, plain, oneBlock] = [explore(o), explore({ ...o, symmetry: false }), explore({ ...o, geometry: [] })];
    expect(reduced.pageSymmetry).toBe(true);
    expect([reduced.states, plain.states, oneBlock.states]).toEqual([225, 625, 70]);
  });

  it('straddle: symmetry changes neither the verdict nor the depth, and adds no state, in lockstep', () => {
    const o: ExploreOptions = { pages: 4, vms: 1, gfns: 1, maxPins: 1, depth: 2, symmetry: true, modelOnly: false, geometry: ['straddle', 'near'] };
    const [reduced, plain] = [explore(o), explore({ ...o, symmetry: false })];
    expect(reduced.ok && plain.ok).toBe(true);
    expect(reduced.pageSymmetry).toBe(true);
    expect(reduced.depth).toBe(plain.depth);
    expect(reduced.states).toBeLessThan(plain.states);
  });
});

// Defects invisible to the default geometry's alphabet: two from the catalogue (which the default
// run catches too), two made up here.
const bug = (id: string, inject: HypBug['inject']): HypBug => ({ id, description: id, suite: 'ownership', inject });
const catalogued = (id: string): HypBug => OWNERSHIP_BUGS.find((b) => b.id === id)!;
const MADE_UP: [string, HypBug, Partial<ExploreOptions>][] = [
  ['straddle: a ranged effect that stops at the end of its first 2 MiB block (catalogued)', catalogued('effect-stops-at-block-end'), { geometry: ['straddle'] }],
  [
    "near: __pkvm_hyp_donate_host that gives back a VM's page",
    bug('donate-host-gives-vm-pages', (h) => {
      h.hyp_check_not_internal = () => 0;
    }),
    { geometry: ['near'] },
  ],
  ['block: a 512-page unshare that returns only its first page (catalogued)', catalogued('block-unshare-first-page'), { geometry: ['block'] }],
  [
    "two VMs: every VM handle working on slot 0's tables",
    bug('one-guest-table', (h) => {
      const hyp = h as unknown as { slotOf(handle: number): number };
      const original = hyp.slotOf.bind(h);
      hyp.slotOf = (handle) => (original(handle) < 0 ? -1 : 0);
    }),
    { vms: 2 },
  ],
];

describe('each geometry finds a defect the default geometry cannot reach', () => {
  const o: ExploreOptions = { pages: 2, vms: 1, gfns: 2, maxPins: 2, depth: 4, symmetry: true, modelOnly: false };
  it.each(MADE_UP)('%s', (_what, defect, geometry) => {
    const found = explore({ ...o, ...geometry, bugs: [defect] });
    expect(found.ok).toBe(false);
    expect(found.trace!.length).toBeLessThanOrEqual(3);
    expect(explore({ ...o, bugs: [defect] }).ok).toBe(true);
  });
});

describe('pkvm-check explore --geometry', () => {
  afterEach(() => vi.restoreAllMocks());

  it('names the geometry in its JSON, and refuses unknown or impossible ones with a usage error', async () => {
    let text = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      text += String(chunk);
      return true;
    });
    expect(await exploreCommand(['--geometry', 'block,straddle', '--depth', '1', '--json'])).toBe(0);
    vi.restoreAllMocks();
    expect(JSON.parse(text)).toMatchObject({ ok: true, geometry: 'straddle,block' });
    await expect(exploreCommand(['--geometry', 'diagonal'])).rejects.toThrow(UsageError);
    await expect(exploreCommand(['--geometry', 'default,block'])).rejects.toThrow(/unknown geometry "default"/);
    await expect(exploreCommand(['--geometry', 'straddle', '--pages', '1'])).rejects.toThrow(UsageError);
  });
});
