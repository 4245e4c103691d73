// The explorer: exact reachable-state counts on configurations counted by hand, the acceptance runs
// of `pkvm-check explore`, and that symmetry reduction never changes a verdict or adds states.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CallName } from '../types/calls';
import { explore, type ExploreOptions } from '../checker/explore/bfs';
import { HashSet53 } from '../checker/explore/hash-set';
import { ALL_EXPLORE_CALLS } from '../checker/explore/alphabet';
import { OWNERSHIP_BUGS } from '../checker/bugs/ownership';
import { exploreCommand } from '../checker/cli/explore';
import { UsageError } from '../checker/cli/usage';
import { readTrace } from '../checker/trace/file';
import { Lockstep } from '../checker/lockstep';
import { DEFAULT_CONFIG } from '../types/config';

const base: ExploreOptions = { pages: 1, vms: 0, gfns: 0, maxPins: 1, depth: null, symmetry: true, modelOnly: true };
const PIN_CALLS: CallName[] = ['__pkvm_host_share_hyp', '__pkvm_host_unshare_hyp', 'hyp_pin_shared_mem', 'hyp_unpin_shared_mem'];
const HOST_HYP_FFA_CALLS: CallName[] = [...PIN_CALLS, '__pkvm_host_donate_hyp', '__pkvm_hyp_donate_host', '__pkvm_host_share_ffa', '__pkvm_host_unshare_ffa'];

const binomial = (n: number, k: number): number => (k === 0 ? 1 : (binomial(n - 1, k - 1) * n) / k);

describe('reachable abstract states, counted by hand', () => {
  it.each([
    [true, true],
    [true, false],
    [false, true],
  ])('1 page, share/unshare_hyp + pin/unpin, max 1 pin: {OWNED, SHARED, SHARED+pin} (model-only %s, symmetry %s)', (modelOnly, symmetry) => {
    const r = explore({ ...base, calls: PIN_CALLS, modelOnly, symmetry });
    expect(r.ok).toBe(true);
    expect(r.complete).toBe(true);
    expect(r.abstractStates).toBe(3);
    // In lockstep the key also holds hyp's host stage-2 leaf: OWNED before any share (entry still
    // zero) and after unshare (a valid page mapping) are then two states.
    expect(r.states).toBe(modelOnly ? 3 : 4);
    expect(r.depth).toBe(2);
  });

  it('1 page with host accesses: 3 page states x (fault log empty or holding the page) = 6', () => {
    // OWNED, SHARED with hyp, donated to hyp; an access to the donated page logs it, and only
    // __pkvm_init_vm (not in the alphabet) clears the log, so each page state pairs with both logs.
    const calls: CallName[] = ['__pkvm_host_share_hyp', '__pkvm_host_unshare_hyp', '__pkvm_host_donate_hyp', '__pkvm_hyp_donate_host', 'host_access'];
    for (const modelOnly of [true, false]) expect(explore({ ...base, calls, modelOnly }).abstractStates).toBe(6);
  });

  // 6.16's teardown leaves the VM's shares behind (docs/semantics.md §7), up to the alphabet's cap of
  // slots x gfns + 1 = 2 shares a page: with no orphaned share 3, with one 3, with two {no VM, VM}.
  it('1 page, 1 VM slot, 1 guest frame: {no VM, VM, VM mapping the page} and orphaned shares = 3 + 3 + 2', () => {
    const calls: CallName[] = ['__pkvm_init_vm', '__pkvm_teardown_vm', '__pkvm_host_share_guest', '__pkvm_host_unshare_guest'];
    for (const modelOnly of [true, false]) {
      const r = explore({ ...base, vms: 1, gfns: 1, calls, modelOnly });
      expect(r.ok && r.complete).toBe(true);
      expect(r.abstractStates).toBe(8);
      expect(r.coverage.__pkvm_teardown_vm).toMatchObject({ '0': expect.any(Number), '-ENOENT': expect.any(Number) });
    }
  });

  // Without VMs or host accesses the pages are independent: the reachable set is the product of the
  // per-page states, and with page symmetry the multisets of them.
  const perPage = (k: number) => ['host OWNED', 'donated to hyp', 'shared with ffa', ...Array.from({ length: k + 1 }, (_, i) => `shared with hyp, ${i} pins`)].length;
  it.each([
    [2, 2],
    [3, 1],
  ])('%i pages, host/hyp/ffa calls, max %i pins: product of per-page states, multisets with symmetry', (pages, maxPins) => {
    const n = perPage(maxPins);
    const plain = explore({ ...base, pages, maxPins, calls: HOST_HYP_FFA_CALLS, symmetry: false });
    const reduced = explore({ ...base, pages, maxPins, calls: HOST_HYP_FFA_CALLS, symmetry: true });
    expect(plain.states).toBe(n ** pages);
    expect(reduced.pageSymmetry).toBe(true);
    expect(reduced.states).toBe(binomial(n + pages - 1, pages));
  });

  it('lockstep reaches exactly the model states the model alone reaches, and more hyp states', () => {
    const o = { ...base, pages: 2, maxPins: 1, calls: [...HOST_HYP_FFA_CALLS, 'host_access' as const] };
    const [model, lockstep] = [explore(o), explore({ ...o, modelOnly: false })];
    expect(lockstep.ok && lockstep.complete).toBe(true);
    expect(lockstep.abstractStates).toBe(model.states);
    expect(lockstep.states).toBeGreaterThan(model.states);
  });
});

describe('pkvm-check explore', () => {
  const dirs: string[] = [];
  afterEach(() => {
    vi.restoreAllMocks();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function runJson(argv: string[]): Promise<{ code: number; out: Record<string, unknown> }> {
    let text = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      text += String(chunk);
      return true;
    });
    const code = await exploreCommand([...argv, '--json']);
    vi.restoreAllMocks();
    return { code, out: JSON.parse(text) as Record<string, unknown> };
  }

  it('--pages 2 --depth 4 holds with at least 100 states', async () => {
    const { code, out } = await runJson(['--pages', '2', '--depth', '4']);
    expect(code).toBe(0);
    expect(out).toMatchObject({ ok: true, depth: 4, counterexample: null });
    expect(out.states as number).toBeGreaterThanOrEqual(100);
    expect(Object.keys(out)).toEqual(expect.arrayContaining(['ok', 'states', 'transitions', 'depth', 'statesPerSecond', 'counterexample']));
  });

  it('with the first catalogued bug it fails and writes a replayable trace no longer than the depth', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'explore-'));
    dirs.push(dir);
    const bug = OWNERSHIP_BUGS[0];
    const { code, out } = await runJson(['--pages', '2', '--depth', '4', '--inject', bug.id, '--out', dir]);
    expect(code).toBe(1);
    expect(out.ok).toBe(false);
    const trace = readTrace(out.counterexample as string);
    expect(trace.inject).toBe(bug.id);
    expect(trace.steps.length).toBeGreaterThan(0);
    expect(trace.steps.length).toBeLessThanOrEqual(4);
    // The trace reproduces the failure with the bug, and passes on the correct hyp.
    const replay = (bugs: typeof OWNERSHIP_BUGS) => {
      const ls = new Lockstep(DEFAULT_CONFIG, bugs);
      for (let i = 0; i < trace.steps.length; i++) {
        const f = ls.step(trace.steps[i], i);
        if (f) return f;
      }
      return ls.finish();
    };
    expect(replay([bug])?.step).toBe(trace.failure?.step);
    expect(replay([])).toBeNull();
  });

  it('rejects bad flags and unknown bug ids with a usage error', async () => {
    await expect(exploreCommand(['--pages', 'x'])).rejects.toThrow(UsageError);
    await expect(exploreCommand(['--inject', 'no-such-bug'])).rejects.toThrow(/no-such-bug/);
    await expect(exploreCommand(['--calls', 'hyp_panic'])).rejects.toThrow(UsageError);
    await expect(exploreCommand(['--frobnicate'])).rejects.toThrow(UsageError);
  });
});

describe('symmetry reduction', () => {
  // Bugs the explorer's alphabet cannot reach say why (beyondExplorer); the default run catches them.
  it.each(OWNERSHIP_BUGS.filter((b) => b.beyondExplorer === undefined).map((b) => [b.id, b] as const))('finds %s within 3 calls, with and without symmetry, at the same length', (_id, bug) => {
    const extra = bug.explorer ?? {};
    const o: ExploreOptions = { pages: 2, gfns: 1, maxPins: 1, depth: 3, symmetry: true, modelOnly: false, bugs: [bug], calls: extra.allCalls ? ALL_EXPLORE_CALLS : null, geometry: extra.geometry ?? [], vms: extra.vms ?? 1 };
    const reduced = explore(o);
    const plain = explore({ ...o, symmetry: false });
    expect(reduced.ok).toBe(false);
    expect(plain.ok).toBe(false);
    expect(reduced.trace?.length).toBe(plain.trace?.length);
  });

  it.each([
    [2, 1, 4],
    [3, 0, 3],
  ])('never changes the verdict nor adds states on the correct hyp (%i pages, %i VMs, depth %i)', (pages, vms, depth) => {
    const o: ExploreOptions = { pages, vms, gfns: 1, maxPins: 1, depth, symmetry: true, modelOnly: false };
    const [reduced, plain] = [explore(o), explore({ ...o, symmetry: false })];
    expect(reduced.ok && plain.ok).toBe(true);
    expect(reduced.depth).toBe(plain.depth);
    expect(reduced.states).toBeLessThanOrEqual(plain.states);
    expect(reduced.abstractStates).toBeLessThan(plain.abstractStates);
  });

  it('merges VMs created in different orders, and interchangeable pages', () => {
    // One page, two VM slots, to the fixpoint: only the handle renaming can merge states here.
    const o: ExploreOptions = { pages: 1, vms: 2, gfns: 1, maxPins: 1, depth: null, symmetry: true, modelOnly: true };
    const [reduced, plain] = [explore(o), explore({ ...o, symmetry: false })];
    expect(reduced.ok && plain.ok && reduced.complete && plain.complete).toBe(true);
    expect(reduced.pageSymmetry).toBe(false);
    expect(reduced.states).toBeLessThan(plain.states);
    // Two pages, bounded: page permutations merge more.
    const two = { ...o, pages: 2, depth: 5 };
    const [pagesReduced, pagesPlain] = [explore(two), explore({ ...two, symmetry: false })];
    expect(pagesReduced.pageSymmetry).toBe(true);
    expect(pagesReduced.states).toBeLessThan(pagesPlain.states);
    expect(pagesReduced.depth).toBe(pagesPlain.depth);
  });
});

describe('visited set', () => {
  it('agrees with a Set on 53-bit keys across growth, including 0 and 2^53 - 1', () => {
    const ours = new HashSet53();
    const reference = new Set<number>();
    let x = 12345;
    for (let i = 0; i < 20000; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const key = i % 3 === 0 ? x % 5000 : x * 2097152 + (i % 2097152); // repeats, and large keys
      expect(ours.add(key)).toBe(!reference.has(key));
      reference.add(key);
    }
    for (const key of [0, 1, 2 ** 53 - 1]) {
      expect(ours.add(key)).toBe(!reference.has(key));
      reference.add(key);
      expect(ours.add(key)).toBe(false);
    }
    expect(ours.size).toBe(reference.size);
  });
});
