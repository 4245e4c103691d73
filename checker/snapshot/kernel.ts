// The CallHandler of __pkvm_host_stage2_snapshot on the real kernel (kernel/patches/0003). The
// agent, acting as the host kernel, writes the descriptor and links the memcache with host writes
// into the relocated window pages, exactly as harness.ts does in the simulation; the call runs at
// EL2 with its own debug checks at each internal step ("no host access to donated snapshot pages",
// "hyp writes only pages hyp owns"), which report the first violation with its step and page. In the
// same batch the checker reads back the descriptor, the used-pages array and the copy's table pages;
// it walks the copy with its own walker and compares a digest of its leaves with the digest EL2 took
// of the host stage-2 when the teardown began. The model is fed what it cannot know: the links the
// host wrote, and the host stage-2's table count once the setup is done (reported by EL2).
import type { Call, SnapshotArgs } from '../../types/calls';
import { PA_PFNS } from '../../types/config';
import { host_access } from '../../model/access';
import { isMemory } from '../../model/range';
import { page, type State } from '../../model/state';
import { __pkvm_host_stage2_snapshot as modelSnapshot, HOST_PGD_PAGES, snapshotHostPages, usedArrayEntries, type SnapshotEffect } from '../../model/snapshot';
import { SNAP_MC_HEAD, SNAP_MC_NR_PAGES, SNAP_NUM_USED_PAGES, SNAP_PGD, SNAP_PGD_PAGES, SNAP_USED, SNAP_USED_PAGES_INDX } from '../../hyp/snapshot';
import { OP, REFUSED, type Op, type OpResult } from '../kernel/abi';
import { decodeProbe, describeModelPage, describeProbe, hostReaches, probeAgrees } from '../kernel/probe';
import type { Relocation } from '../kernel/relocate';
import { KernelTarget } from '../targets/kernel';
import { TargetFailure } from '../target';
import type { CallHandler } from '../handlers';
import type { Lockstep } from '../lockstep';
import type { Failure } from '../suite-types';
import { P } from '../properties';
import { formatResult, hex } from '../vocabulary';
import { estimateTables, SIM_SHAPE, type HostShape } from './generators';
import { walkCopy, type Geometry } from './kernel-copy';

const PAGE = 4096;
const pfnOf = (pa: number): number => Math.floor(pa / PAGE);
/** Words one read op returns. */
const WORDS_PER_READ = 3;

/** Violation kinds and steps as the patch reports them (include/uapi/linux/pkvm_check.h). */
const KIND_REACHABLE = 1n;
const STEPS = ['', 'donated', 'copied a table', 'rollback begin', 'teardown begin', 'recording a used page', 'writing the descriptor back'];

/** What the kernel target learnt about its host stage-2, per runner. */
interface Learnt {
  /** Table pages of the host stage-2 the model cannot explain (the kernel's own memory and devices). */
  extraTables: number;
  geometry: Geometry | null;
}
const learnt = new WeakMap<Lockstep, Learnt>();
const learntOf = (ls: Lockstep): Learnt => {
  let l = learnt.get(ls);
  if (!l) learnt.set(ls, (l = { extraTables: 0, geometry: null }));
  return l;
};

/** The host stage-2's shape as this runner's target showed it so far (the simulation's by default). */
export function hostShape(ls: Lockstep): HostShape {
  const l = learnt.get(ls);
  return l?.geometry ? { extraTables: l.extraTables, pgdPages: l.geometry.pgdPages } : SIM_SHAPE;
}

const decodeGeometry = (info: OpResult): Geometry => ({ startLevel: Number(info.v[1] & 0xffn), pgdPages: Number((info.v[1] >> 8n) & 0xffn), iaBits: Number((info.v[1] >> 16n) & 0xffn) });

/** The geometry, asked once per runner: a snapshot of PA 0, which is not memory, fails at once. */
function geometryOf(target: KernelTarget, l: Learnt, step: number): Geometry {
  if (!l.geometry) l.geometry = decodeGeometry(target.runHandled([{ op: OP.SNAPSHOT, a: 0, b: 0 }, { op: OP.SNAPSHOT_INFO, a: 0, b: 0 }], [], step)[1]);
  return l.geometry;
}

/** A physical address of the trace on the real machine (the page relocated, the offset kept). */
const realPa = (r: Relocation, pa: number): number => r.pfn(pfnOf(pa)) * PAGE + (pa % PAGE);

/** The descriptor fields as the host writes them (byte offset, trace value, whether it is an address). */
function descriptorFields(a: SnapshotArgs): [number, number, boolean][] {
  return [
    [SNAP_PGD, a.pgd, true],
    [SNAP_PGD_PAGES, a.pgd_pages, false],
    [SNAP_MC_HEAD, a.mc.length > 0 ? a.mc[0] : 0, true],
    [SNAP_MC_NR_PAGES, a.mc_nr_pages, false],
    [SNAP_USED, a.used, true],
    [SNAP_NUM_USED_PAGES, a.num_used_pages, false],
    [SNAP_USED_PAGES_INDX, a.used_pages_indx, false],
  ];
}

/** The host's preparation: a write op per word, the links it left (trace values), and a fault if any. */
interface Prepared {
  readonly ops: Op[];
  readonly links: Map<number, number>;
  /** The first page whose write faults (the call is not issued), with the fault's errno. */
  readonly fault: { readonly pfn: number; readonly result: number } | null;
  /** The words written (real PA -> real value, the last write to each), to read back after the call. */
  readonly words: Map<number, number>;
}

function prepare(model: State, r: Relocation, a: SnapshotArgs): Prepared {
  const ops: Op[] = [];
  const links = new Map<number, number>();
  const words = new Map<number, number>();
  const write = (pa: number, value: number) => {
    words.set(realPa(r, pa), value);
    ops.push({ op: OP.HOST_WRITE_WORD, a: realPa(r, pa), b: value });
  };
  const pages = snapshotHostPages(a);
  for (let i = 0; i < pages.length; i++) {
    const pfn = pages[i];
    const result = host_access(model, { pfn, write: true });
    if (result < 0) return { ops, links, fault: { pfn, result }, words };
    if (!isMemory(model.config, pfn)) continue; // a device write: no memory changes
    if (i === 0) for (const [off, v, addr] of descriptorFields(a)) write(pfn * PAGE + off, addr ? realPa(r, v) : v);
    else {
      const link = i < a.mc.length ? a.mc[i] : a.mc_tail;
      links.set(pfn, link);
      write(pfn * PAGE, realPa(r, link));
    }
  }
  return { ops, links, fault: null, words };
}

/** Reads of [pa, pa + words * 8): one op per 3 words. */
const readOps = (pa: number, words: number): Op[] => Array.from({ length: Math.ceil(words / WORDS_PER_READ) }, (_, i) => ({ op: OP.HOST_READ_WORDS, a: pa + i * 8 * WORDS_PER_READ, b: 0 }));
const wordsOf = (res: readonly OpResult[], words: number): bigint[] => res.flatMap((x) => [...x.v]).slice(0, words);

/** Everything the handler sends after the host's writes, and where each part's answers start. */
interface Plan {
  readonly ops: Op[];
  readonly usedWords: number;
  /** Pages read whole (real pfns), in op order. */
  readonly pages: number[];
  /** Memory pages probed after the call (trace pfns), in op order. */
  readonly probed: number[];
}

function plan(ls: Lockstep, r: Relocation, a: SnapshotArgs, prep: Prepared, send: boolean, pgdPages: number): Plan {
  const ops: Op[] = send ? [{ op: OP.SNAPSHOT, a: realPa(r, a.desc), b: 0 }, { op: OP.SNAPSHOT_INFO, a: 0, b: 0 }] : [];
  const readable = (pa: number) => isMemory(ls.config, pfnOf(pa));
  // The descriptor's fields and the words the host wrote, as they are after the call.
  for (const pa of prep.words.keys()) ops.push({ op: OP.HOST_READ_WORDS, a: pa, b: 0 });
  const usedWords = send && readable(a.used) ? Math.min(usedArrayEntries(a.num_used_pages), a.mc.length + 1) : 0;
  ops.push(...readOps(realPa(r, a.used - (a.used % PAGE)), usedWords));
  const pages: number[] = [];
  if (send && pgdPages > 0) {
    const pgd = Array.from({ length: Math.min(a.pgd_pages, pgdPages) }, (_, i) => a.pgd - (a.pgd % PAGE) + i * PAGE);
    const candidates = [...pgd, ...a.mc].filter(readable).map((pa) => r.pfn(pfnOf(pa)));
    for (const p of new Set(candidates)) {
      pages.push(p);
      ops.push(...readOps(p * PAGE, PAGE / 8));
    }
  }
  const named = [a.desc, a.used, ...a.mc, ...Array.from({ length: Math.min(a.pgd_pages, 32) }, (_, i) => a.pgd + i * PAGE)];
  const probed = [...new Set(named.map(pfnOf))].filter((p) => isMemory(ls.config, p));
  for (const p of probed) ops.push({ op: OP.PROBE, a: r.pfn(p), b: 0 });
  return { ops, usedWords, pages, probed };
}

export const kernelSnapshotHandler: CallHandler = {
  run(ls: Lockstep, call: Call, step: number) {
    if (call.call !== '__pkvm_host_stage2_snapshot') throw new Error(`kernelSnapshotHandler: cannot run ${call.call}`);
    const target = ls.target;
    if (!(target instanceof KernelTarget)) throw new Error('kernelSnapshotHandler runs on the kernel target only');
    const a = call.args;
    const r = target.relocation();
    const l = learntOf(ls);
    let g: Geometry;
    try {
      g = geometryOf(target, l, step);
    } catch (e) {
      if (e instanceof TargetFailure) return { result: 0, modelResult: 0, failure: e.failure };
      throw e;
    }
    const prep = prepare(ls.model, r, a);
    // The model's pages and result without the table count (which only its last size check reads).
    const dry = modelSnapshot(ls.model, a, { link: (pa) => prep.links.get(pfnOf(pa)) ?? 0, tablePages: () => 0 });
    // The model's host PGD is 2 pages (a 40-bit IPA); the kernel's has its own size (16 pages at
    // level 0 for QEMU's 52-bit IPA): a PGD of a size between the two is not sent.
    const pgdBetween = a.pgd_pages >= Math.min(g.pgdPages, HOST_PGD_PAGES) && a.pgd_pages < Math.max(g.pgdPages, HOST_PGD_PAGES);
    const send = prep.fault === null && !pgdBetween;
    // The copy's pages are read only when the model may succeed (it reads the table count last).
    const p = plan(ls, r, a, prep, send, dry.result >= 0 ? g.pgdPages : 0);
    // Beyond the trace's 40-bit PA space the kernel's stage-2 (52-bit IPA) answers otherwise: not probed.
    const faultProbe: Op[] = prep.fault && prep.fault.pfn < PA_PFNS ? [{ op: OP.PROBE, a: r.pfn(prep.fault.pfn), b: 0 }] : [];
    const pages = [...snapshotHostPages(a), ...p.probed].filter((q) => isMemory(ls.config, q));
    let res: OpResult[];
    try {
      res = target.runHandled([...prep.ops, ...faultProbe, ...p.ops], pages, step);
    } catch (e) {
      if (e instanceof TargetFailure) return { result: dry.result, modelResult: dry.result, failure: e.failure };
      throw e;
    }
    res = res.slice(prep.ops.length);
    if (prep.fault) {
      // The host's write faults: the call is not issued, and the host stage-2 must refuse the page.
      const probe = faultProbe.length > 0 ? decodeProbe(res[0]) : null;
      const failure: Failure | null = probe && hostReaches(probe) ? { property: P.hostReachesOnlyItsPages, step, message: `pfn ${hex(prep.fault.pfn)}: the host's write before the snapshot faults in the model, but its stage-2 lets it through (${describeProbe(probe)})` } : null;
      return { result: prep.fault.result, modelResult: prep.fault.result, failure };
    }
    if (!send) return { result: dry.result, modelResult: dry.result, failure: null };
    const [snap, info] = res;
    // The device refuses a descriptor that names RAM outside its window (a range the relocation
    // cannot move whole, such as PGD pages running from MMIO into memory): the model's answer stands.
    if (snap.ret === REFUSED) return { result: dry.result, modelResult: dry.result, failure: null };
    const tables = Number(snap.v[1]);
    const eff = modelSnapshot(ls.model, a, { link: (pa) => prep.links.get(pfnOf(pa)) ?? 0, tablePages: () => tables });
    if (tables > 0) l.extraTables = Math.max(l.extraTables, tables - estimateTables(ls.model, eff.units.flat()));
    const want = eff.result >= 0 ? realPa(r, eff.result) : eff.result;
    const result = snap.ret === want ? eff.result : snap.ret;
    const failure = judge(ls, r, a, eff, prep, p, res.slice(2), snap, info, g, step);
    if (snap.ret !== want) return { result, modelResult: eff.result, failure: failure ?? { property: P.resultsAgree, step, message: `__pkvm_host_stage2_snapshot: model returned ${formatResult(eff.result)} (kernel address ${hex(Math.max(want, 0))}), the kernel returned ${snap.ret >= 0 ? hex(snap.ret) : formatResult(snap.ret)}` } };
    return { result, modelResult: eff.result, failure };
  },
};

/** The EL2 report, the state of every page named, what the call left in host memory, and the copy. */
function judge(ls: Lockstep, r: Relocation, a: SnapshotArgs, eff: SnapshotEffect, prep: Prepared, p: Plan, res: readonly OpResult[], snap: OpResult, info: OpResult, g: Geometry, step: number): Failure | null {
  const v = snap.v[0];
  if (v !== 0n) {
    const kind = v >> 56n;
    const pfn = Number(v & 0xffffffffffffn);
    const where = `at "${STEPS[Number((v >> 48n) & 0xffn)] ?? 'an unknown step'}": kernel pfn ${hex(pfn)} (${r.describePfn(pfn)})`;
    return kind === KIND_REACHABLE
      ? { property: P.noHostAccessToDonatedSnapshotPages, step, message: `${where}, taken by the snapshot, is reachable by the host (EL2 debug check)` }
      : { property: P.hypWritesOnlyOwnPages, step, message: `${where}: hyp wrote it without owning it (EL2 debug check)` };
  }
  // First the pages' states (the probes come last): a page left with hyp is the model's business.
  const probes = res.slice(res.length - p.probed.length);
  for (let i = 0; i < p.probed.length; i++) {
    const probe = decodeProbe(probes[i]);
    const want = page(ls.model, p.probed[i]);
    if (!probeAgrees(want, probe)) return { property: P.stateAgrees, step, message: `after the snapshot: pfn ${hex(p.probed[i])} (kernel pfn ${hex(r.pfn(p.probed[i]))}): model ${describeModelPage(want)}, kernel ${describeProbe(probe)}` };
  }
  let at = 0;
  const take = (n: number) => res.slice(at, (at += n));
  const success = eff.result >= 0;
  // The words the host wrote: unchanged, except the fields a successful call writes back and the
  // links of memcache pages the copy consumed (they became tables).
  const consumed = new Set(eff.consumed.map((pa) => r.pfn(pfnOf(pa))));
  const desc = realPa(r, a.desc - (a.desc % PAGE));
  const writeback = new Set([SNAP_MC_HEAD, SNAP_MC_NR_PAGES, SNAP_USED_PAGES_INDX].map((off) => desc + off));
  for (const [pa, value] of prep.words) {
    const [got] = take(1);
    if (got.ret !== 0) return { property: P.noHostAccessToDonatedSnapshotPages, step, message: `after the snapshot the host cannot read kernel address ${hex(pa)} (${r.describePfn(pfnOf(pa))}), which it wrote before` };
    const allowed = success && (writeback.has(pa) || consumed.has(pfnOf(pa)));
    if (!allowed && got.v[0] !== BigInt(value))
      return { property: success ? P.snapshotWritesOnlyItsOutput : P.failedCallChangesNothing, step, message: `snapshot ${success ? 'succeeded' : `failed with ${formatResult(eff.result)}`} but changed the host's word at kernel address ${hex(pa)} (${r.describePfn(pfnOf(pa))}): ${hex(value)} -> 0x${got.v[0].toString(16)}` };
    if (success && pa === desc + SNAP_USED_PAGES_INDX && Number(got.v[0]) !== eff.recorded)
      return { property: P.snapshotUsedPagesExact, step, message: `the descriptor's used_pages_indx is ${got.v[0]}, expected ${eff.recorded}` };
  }
  const used = wordsOf(take(Math.ceil(p.usedWords / WORDS_PER_READ)), p.usedWords);
  const pageWords = new Map<number, BigUint64Array>();
  for (const pfn of p.pages) pageWords.set(pfn, BigUint64Array.from(wordsOf(take(Math.ceil(PAGE / 8 / WORDS_PER_READ)), PAGE / 8)));
  if (!success) return null;
  for (let i = 0; i < eff.recorded && i < used.length; i++)
    if (Number(used[i]) !== realPa(r, eff.consumed[i])) return { property: P.snapshotUsedPagesExact, step, message: `used-pages entry ${i}: 0x${used[i].toString(16)}, expected the consumed page ${hex(realPa(r, eff.consumed[i]))}` };
  const copy = walkCopy(pageWords, r.pfn(pfnOf(a.pgd)), g);
  if (copy.problem) return { property: P.snapshotCopyTablesAreMemcachePages, step, message: copy.problem };
  const bad = copy.tables.find((t) => !consumed.has(t));
  if (bad !== undefined) return { property: P.snapshotCopyTablesAreMemcachePages, step, message: `table page kernel pfn ${hex(bad)} (${r.describePfn(bad)}) of the copy is not one of the consumed memcache pages` };
  if (copy.tables.length !== consumed.size) return { property: P.snapshotCopyTablesAreMemcachePages, step, message: `the copy has ${copy.tables.length} table pages, the model consumed ${consumed.size} memcache pages` };
  const leaves = Number(info.v[0]);
  if (copy.digest !== snap.v[2] || copy.leaves !== leaves)
    return { property: P.snapshotCopyEqualsHost, step, message: `the copy's leaves (${copy.leaves}, digest 0x${copy.digest.toString(16)}) differ from the host stage-2's when the teardown began (${leaves}, digest 0x${snap.v[2].toString(16)})` };
  return null;
}
