// Adversarial snapshot calls. A call is drawn as a few u32s and resolved against the live model, so
// that a sequence generator can mix snapshots with other calls: the pages are chosen from what the
// host owns *now*, and one scenario per call bends one thing — a repeated or overlapping page, a
// page owned by hyp or lent away, MMIO, out of range, misaligned, a memcache list too short, cyclic
// or longer than claimed, a used-pages array too short (the
// 512-entries-per-page boundary itself needs hundreds of table pages: see properties/snapshot.test.ts).
//
// How many memcache pages a call needs depends on the host stage-2's shape, which the model does not
// track; `estimateTables` approximates it from the model (one level-2 table per 1 GiB and one level-3
// table per 2 MiB holding a page that is not plainly host-owned, or that this call takes). Stale
// tables left by earlier calls make it a lower bound; checker/snapshot/stats.ts measures the hits.
import fc from 'fast-check';
import { PA_PFNS, type MachineConfig } from '../../types/config';
import { hostState, nonDefaultPages, page, type State } from '../../model/state';
import type { TraceStep } from '../vocabulary';

/** How many draws one snapshot step takes. */
export const SNAPSHOT_DRAWS = 10;

export type SnapshotScenario =
  | 'clean'
  | 'cyclic'
  | 'mc-too-short'
  | 'mc-longer-than-claimed'
  | 'mc-shorter-than-claimed'
  | 'repeated-page'
  | 'hyp-owned-page'
  | 'lent-page'
  | 'mmio'
  | 'out-of-range'
  | 'misaligned'
  | 'small-pgd'
  | 'used-indx-nonzero';

/** Scenario weights, out of 100. */
const SCENARIOS: readonly [SnapshotScenario, number][] = [
  ['clean', 40],
  ['cyclic', 10],
  ['mc-too-short', 6],
  ['mc-longer-than-claimed', 6],
  ['mc-shorter-than-claimed', 3],
  ['repeated-page', 7],
  ['hyp-owned-page', 8],
  ['lent-page', 4],
  ['mmio', 3],
  ['out-of-range', 3],
  ['misaligned', 5],
  ['small-pgd', 3],
  ['used-indx-nonzero', 2],
];

export function scenarioOf(d: number): SnapshotScenario {
  let x = d % 100;
  for (const [s, w] of SCENARIOS) {
    if (x < w) return s;
    x -= w;
  }
  return 'clean';
}

/** The arbitrary of draws; resolve each with `resolveSnapshotStep` against the live model. */
export function snapshotStepArb(config: MachineConfig): fc.Arbitrary<readonly number[]> {
  void config; // the draws are machine-independent; resolution reads the machine from the model
  return fc.array(fc.nat({ max: 0xffffffff }), { minLength: SNAPSHOT_DRAWS, maxLength: SNAPSHOT_DRAWS });
}

const P = (pfn: number) => pfn * 4096;
const GB = 512 * 512;
const MB2 = 512;

/** Level-2 and level-3 tables the host stage-2 needs for the model's non-default pages plus `extra`. */
export function estimateTables(model: State, extra: readonly number[]): number {
  const level2 = new Set<number>(); // 1 GiB blocks
  const level3 = new Set<number>(); // 2 MiB blocks
  const add = (first: number, last: number) => {
    for (let b = Math.floor(first / GB); b <= Math.floor(last / GB); b++) level2.add(b);
    for (let b = Math.floor(first / MB2); b <= Math.floor(last / MB2); b++) level3.add(b);
  };
  // hyp's reserved memory as whole ranges (the same blocks as page by page, without the per-page walk).
  for (const [first, nr] of model.reserved) add(first, first + nr - 1);
  for (const [p, pg] of model.pages) if (pg.owner !== 'host' || pg.hyp || pg.ffa || pg.guests > 0 || pg.pins > 0) add(p, p);
  for (const p of extra) add(p, p);
  return level2.size + level3.size;
}

/** Picks host-owned pages, distinct from each other, walking from a drawn cursor with a drawn stride. */
class PagePicker {
  readonly taken = new Set<number>();
  private cursor: number;
  private readonly first: number;
  private readonly nr: number;

  constructor(
    private readonly model: State,
    config: MachineConfig,
    cursorDraw: number,
    private readonly stride: number,
  ) {
    [this.first, this.nr] = config.memory[cursorDraw % config.memory.length];
    this.cursor = this.first + (cursorDraw % this.nr);
  }

  private free(p: number): boolean {
    return !this.taken.has(p) && hostState(page(this.model, p)) === 'OWNED';
  }

  /** `n` contiguous host-owned pages (first pfn), or the cursor's page when none is found. */
  run(n: number): number {
    for (let tries = 0; tries < 64; tries++) {
      const start = this.first + ((this.cursor - this.first) % this.nr);
      this.cursor = start + this.stride;
      if (start + n > this.first + this.nr) continue;
      let ok = true;
      for (let i = 0; i < n && ok; i++) ok = this.free(start + i);
      if (!ok) continue;
      for (let i = 0; i < n; i++) this.taken.add(start + i);
      return start;
    }
    return this.cursor;
  }
}

/** A page for a bad-page scenario, or -1 when the model has none of that kind. */
function foreignPage(model: State, kind: 'hyp' | 'lent', d: number): number {
  const pages: number[] = [];
  for (const [p, pg] of nonDefaultPages(model)) {
    if (kind === 'hyp' ? pg.owner === 'hyp' : hostState(pg) === 'SHARED_OWNED') pages.push(p);
  }
  if (pages.length === 0) return -1;
  // Prefer plain donations to hyp (not its reserve): they are what a bad rollback could give back.
  const free = kind === 'hyp' ? pages.filter((p) => page(model, p).use === 'free') : [];
  const from = free.length > 0 && d % 4 !== 0 ? free : pages;
  return from[d % from.length];
}

/** What the target's host stage-2 adds to the model's: the simulation's is the model's. */
export interface HostShape {
  /** Table pages beyond what the model explains (the real kernel's own memory and devices). */
  readonly extraTables: number;
  /** Pages of the host's PGD, which the copy's PGD must cover. */
  readonly pgdPages: number;
}
export const SIM_SHAPE: HostShape = { extraTables: 0, pgdPages: 2 };

export function resolveSnapshotStep(draw: readonly number[], model: State, config: MachineConfig, shape: HostShape = SIM_SHAPE): TraceStep {
  const d = (i: number) => draw[i % draw.length] ?? 0;
  const scenario = scenarioOf(d(0));
  const strides = [1, 1, 3, MB2 + 1];
  const pick = new PagePicker(model, config, d(1), strides[d(2) % strides.length]);
  const desc = pick.run(1);
  const pgd = pick.run(shape.pgdPages);
  const pgdRange = Array.from({ length: shape.pgdPages }, (_, i) => pgd + i);
  const used = pick.run(1);
  const delta = scenario === 'mc-too-short' ? -1 - (d(3) % 2) : 2 + (d(3) % 3); // the estimate is a lower bound
  const mc: number[] = [];
  for (let guard = 0; guard < 64; guard++) {
    const need = estimateTables(model, [desc, ...pgdRange, used, ...mc]) + shape.extraTables;
    if (mc.length >= need + delta) break;
    mc.push(pick.run(1));
  }
  // The array's size in pages (512 entries each): 0 is too short for any copy; more than one page
  // only matters on machines whose host stage-2 has hundreds of table pages.
  const usedChoices = [1, 1, 1, 1, 0, 2, 1, 0];
  const num_used_pages = usedChoices[d(4) % usedChoices.length];
  let mc_nr_pages = mc.length;
  let mc_tail = 0;
  let pgd_pages = shape.pgdPages;
  let used_pages_indx = 0;
  const addr = { desc: P(desc), pgd: P(pgd), used: P(used) };
  const mcPa = mc.map(P);
  /** Puts `pa` at one of the call's addresses (descriptor, PGD, a memcache page, the array). */
  const place = (pa: number, where: number) => {
    const slot = where % 4;
    if (slot === 0) addr.desc = pa;
    else if (slot === 1) addr.pgd = pa;
    else if (slot === 2 && mcPa.length > 0) mcPa[(where >>> 2) % mcPa.length] = pa;
    else addr.used = pa;
  };
  switch (scenario) {
    case 'cyclic':
      mc_tail = mcPa.length > 0 ? mcPa[d(5) % mcPa.length] : P(desc);
      mc_nr_pages = mcPa.length + 1 + (d(6) % 3);
      break;
    case 'mc-longer-than-claimed':
      mc_nr_pages = Math.max(0, mcPa.length - 1 - (d(5) % 2));
      break;
    case 'mc-shorter-than-claimed':
      mc_nr_pages = mcPa.length + 1 + (d(5) % 2);
      break;
    case 'repeated-page': {
      const all = [addr.desc, addr.pgd, addr.pgd + 4096, addr.used, ...mcPa];
      place(all[d(5) % all.length], d(6));
      break;
    }
    case 'hyp-owned-page':
    case 'lent-page': {
      const p = foreignPage(model, scenario === 'hyp-owned-page' ? 'hyp' : 'lent', d(5));
      if (p >= 0) place(P(p), d(6));
      break;
    }
    case 'mmio': {
      const [first] = config.memory[0];
      place(P(first > 0 ? first - 1 - (d(5) % 16) : config.memory[0][0] + config.memory[0][1]), d(6));
      break;
    }
    case 'out-of-range':
      place(P(PA_PFNS + (d(5) % 4)), d(6));
      break;
    case 'misaligned':
      place([addr.desc, addr.pgd, addr.used, ...mcPa][d(5) % (3 + mcPa.length)] + 8 * (1 + (d(7) % 511)), d(6));
      break;
    case 'small-pgd':
      pgd_pages = d(5) % 3 === 0 ? shape.pgdPages + 1 : d(5) % 2;
      break;
    case 'used-indx-nonzero':
      used_pages_indx = 1 + (d(5) % 4);
      break;
    default:
      break;
  }
  return {
    call: '__pkvm_host_stage2_snapshot',
    args: { desc: addr.desc, pgd: addr.pgd, pgd_pages, mc: mcPa, mc_nr_pages, mc_tail, used: addr.used, num_used_pages, used_pages_indx },
  };
}
