// An oracle for hyp/ptdump.ts that shares nothing with it but the descriptor bit layout. ptdump prints
// a stage-2 table as one line per run of entries (arm64 ptdump.c's note_page merges an entry into the
// current run when it has the same description and continues it); the snapshot suite compares the
// copy's dump with the host's, both printed by the same code, so a ptdump bug would cancel out there.
// Here the raw leaves come from the checker's own scan (checker/walk.ts) and the dump must cover
// every non-zero leaf exactly once, merge leaves only when contiguous and equal, and merge all such.
import type { PhysMem } from '../hyp/memory';
import {
  KVM_PGTABLE_LAST_LEVEL,
  KVM_PGTABLE_PROT_SW0,
  KVM_PGTABLE_PROT_SW1,
  KVM_PTE_LEAF_ATTR_HI_XN,
  KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R,
  KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W,
  KVM_PTE_VALID,
  type KvmPgtable,
  kvm_granule_pages,
  kvm_invalid_pte_owner,
  kvm_pte_to_pfn,
} from '../hyp/pgtable';
import type { Failure } from './suite-types';
import { P } from './properties';
import { scanStage } from './walk';

interface Leaf {
  readonly addr: number;
  readonly pages: number;
  /** The first output page of a valid leaf; -1 for an annotation. */
  readonly out: number;
  readonly desc: string;
}

/** The owner names ptdump prints for annotations; any other id prints as `id<N>`. */
const OWNERS = ['host', 'hyp'];

/** MemAttr[3:0] (descriptor bits 2-5) as ptdump names it: 0b1111 normal, 0b0001 device. */
const memAttrName = (lo: number): string => {
  const m = (lo >>> 2) & 0xf;
  return m === 0xf ? 'NORMAL' : m === 0x1 ? 'DEVICE' : `MEMATTR${m}`;
};

/** What a dump line says of a leaf, apart from its range: type, permissions, attributes, state or owner. */
export function leafDescription(level: number, lo: number, hi: number): string {
  if ((lo & KVM_PTE_VALID) === 0) {
    const id = kvm_invalid_pte_owner(lo);
    return `INVALID  ---  -  owner=${OWNERS[id] ?? `id${id}`}`;
  }
  const perms = `${lo & KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R ? 'R' : '-'}${lo & KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W ? 'W' : '-'}${hi & KVM_PTE_LEAF_ATTR_HI_XN ? 'NX' : 'x'}`;
  const state = hi & KVM_PGTABLE_PROT_SW0 ? 'SHARED_OWNED' : hi & KVM_PGTABLE_PROT_SW1 ? 'SHARED_BORROWED' : 'OWNED';
  return `${level === KVM_PGTABLE_LAST_LEVEL ? 'PAGE' : 'BLOCK'}  ${perms}  ${memAttrName(lo)}  ${state}`;
}

/** A size in pages, in the largest of G, M, K that divides it. */
function sizeText(pages: number): string {
  const kib = pages * 4;
  for (const [unit, k] of [['G', 1 << 20], ['M', 1 << 10]] as const) if (kib % k === 0) return `${kib / k}${unit}`;
  return `${kib}K`;
}

const LINE = /^0x([0-9a-f]{16})-0x([0-9a-f]{16}) {2}(\S+) {2}(.+)$/;

/**
 * Descriptions by the bits they are made of (a page or a block; MemAttr and S2AP; XN and the two
 * software bits; or an annotation's owner), so that each is built once.
 */
const descriptions = new Map<number, string>();
function describeCached(level: number, lo: number, hi: number): string {
  const sig =
    (lo & KVM_PTE_VALID) === 0
      ? 0x1000 + kvm_invalid_pte_owner(lo)
      : ((lo & 0xfc) >>> 2) | (level === KVM_PGTABLE_LAST_LEVEL ? 0x40 : 0) | (hi & KVM_PTE_LEAF_ATTR_HI_XN ? 0x80 : 0) | (hi & KVM_PGTABLE_PROT_SW0 ? 0x100 : 0) | (hi & KVM_PGTABLE_PROT_SW1 ? 0x200 : 0);
  let d = descriptions.get(sig);
  if (d === undefined) descriptions.set(sig, (d = leafDescription(level, lo, hi)));
  return d;
}

/** Every non-zero leaf of the table, in address order, read by the checker's own scan. */
function leavesOf(mem: PhysMem, pgt: KvmPgtable): Leaf[] {
  const leaves: Leaf[] = [];
  scanStage(mem, pgt, () => {}, (addr, level, lo, hi) => {
    const valid = (lo & KVM_PTE_VALID) !== 0;
    leaves.push({ addr, pages: kvm_granule_pages(level), out: valid ? kvm_pte_to_pfn(lo, hi) : -1, desc: describeCached(level, lo, hi) });
  });
  return leaves.sort((a, b) => a.addr - b.addr);
}

/** `b` continues the run that `a` ends: contiguous input, same description, continuing output. */
const continues = (a: Leaf, b: Leaf): boolean => b.addr === a.addr + a.pages && b.desc === a.desc && (a.out < 0 || b.out === a.out + a.pages);

/**
 * What is wrong with `lines` as the dump of the whole table `pgt` (null when nothing is). `what`
 * names the table in the message.
 */
export function ptdumpProblem(mem: PhysMem, pgt: KvmPgtable, lines: readonly string[], what: string): string | null {
  const leaves = leavesOf(mem, pgt);
  const at = (a: number) => `0x${(a * 4096).toString(16)}`;
  let j = 0;
  let prevEnd = -1;
  let prevLast: Leaf | null = null;
  for (let i = 0; i < lines.length; i++) {
    const where = `${what}, ptdump line ${i + 1} "${lines[i]}"`;
    const m = LINE.exec(lines[i]);
    if (!m) return `${where}: not "<start>-<end>  <size>  <description>"`;
    const start = parseInt(m[1], 16) / 4096;
    const end = parseInt(m[2], 16) / 4096;
    if (!Number.isInteger(start) || !Number.isInteger(end) || end <= start) return `${where}: not a range of whole pages`;
    if (start < prevEnd) return `${where}: overlaps the line before or is out of order`;
    if (m[3] !== sizeText(end - start)) return `${where}: the range is ${sizeText(end - start)}, the line says ${m[3]}`;
    if (j < leaves.length && leaves[j].addr < start) return `${what}: the leaf at ${at(leaves[j].addr)} (${leaves[j].desc}) is on no ptdump line`;
    if (j === leaves.length || leaves[j].addr !== start) return `${where}: no leaf starts at ${at(start)}`;
    const first = leaves[j];
    if (prevLast && continues(prevLast, first) && start === prevEnd) return `${where}: continues the line before (contiguous, same description) but is not merged with it`;
    let cursor = start;
    let last = first;
    while (j < leaves.length && leaves[j].addr < end) {
      const l = leaves[j];
      if (l.addr !== cursor) return `${where}: nothing is mapped or annotated at ${at(cursor)}, inside the line's range`;
      if (l.desc !== m[4]) return `${where}: merges the leaf at ${at(l.addr)}, which is "${l.desc}"`;
      if (l !== first && !continues(last, l)) return `${where}: merges the leaf at ${at(l.addr)}, whose output does not continue the run`;
      cursor = l.addr + l.pages;
      last = l;
      j++;
    }
    if (cursor !== end) return `${where}: the leaves end at ${at(cursor)}, the line at ${at(end)}`;
    prevEnd = end;
    prevLast = last;
  }
  if (j < leaves.length) return `${what}: the leaf at ${at(leaves[j].addr)} (${leaves[j].desc}) is on no ptdump line`;
  return null;
}

export function checkPtdump(mem: PhysMem, pgt: KvmPgtable, lines: readonly string[], what: string, step: number): Failure | null {
  const problem = ptdumpProblem(mem, pgt, lines, what);
  return problem ? { property: P.ptdumpMatchesWalker, step, message: problem } : null;
}
