// ptdump for stage-2 tables (arch/arm64/mm/ptdump.c style): one line per run of identical,
// contiguous entries, `<IPA range> <size> <descriptor type> <access permissions> <mem_attributes>
// <state or owner>`. Zero entries are skipped; annotations show their owner (`owner=hyp`), valid
// entries their page state by name (from the software bits).
import * as pt from './pgtable';
import type { KvmPgtable, WalkEntry } from './pgtable';
import type { Hyp } from './mem_protect';

const OWNER_NAMES: Readonly<Record<number, string>> = { 0: 'host', 1: 'hyp' };

const hexAddr = (pfn: number) => `0x${(pfn * 4096).toString(16).padStart(16, '0')}`;

/** A size in pages as arm64 ptdump prints it: the largest unit that divides it. */
export function ptdump_size(pages: number): string {
  const kib = pages * 4;
  if (kib % (1024 * 1024) === 0) return `${kib / (1024 * 1024)}G`;
  if (kib % 1024 === 0) return `${kib / 1024}M`;
  return `${kib}K`;
}

/** Everything ptdump shows of one entry except its address (entries in a run share it). */
function describe(e: WalkEntry): string {
  if (!pt.kvm_pte_valid(e.lo)) return `INVALID  ---  -  owner=${OWNER_NAMES[pt.kvm_invalid_pte_owner(e.lo)] ?? `id${pt.kvm_invalid_pte_owner(e.lo)}`}`;
  const type = e.level === pt.KVM_PGTABLE_LAST_LEVEL ? 'PAGE' : 'BLOCK';
  const r = e.lo & pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R ? 'R' : '-';
  const w = e.lo & pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W ? 'W' : '-';
  const x = e.hi & pt.KVM_PTE_LEAF_ATTR_HI_XN ? 'NX' : 'x';
  const memattr = e.lo & pt.KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_NORMAL;
  const attrs = memattr === pt.KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_NORMAL ? 'NORMAL' : memattr === pt.KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_DEVICE ? 'DEVICE' : `MEMATTR${memattr >>> 2}`;
  const state = e.hi & pt.KVM_PGTABLE_PROT_SW0 ? 'SHARED_OWNED' : e.hi & pt.KVM_PGTABLE_PROT_SW1 ? 'SHARED_BORROWED' : 'OWNED';
  return `${type}  ${r}${w}${x}  ${attrs}  ${state}`;
}

/** The run of entries a dump is printing: its input range, its description, the next output page. */
export interface PtdumpRun {
  start: number;
  end: number;
  desc: string;
  nextOut: number;
}

/**
 * ptdump as one object per hyp instance (ptdumpOf), so that a bug can replace one of its steps:
 * describe an entry, decide whether it continues the current run (ptdump.c's note_page), dump.
 */
export class KvmPtdump {
  describe(e: WalkEntry): string {
    return describe(e);
  }

  /** Entries merge with the same description, contiguous input ranges and continuing output addresses. */
  continues_run(run: PtdumpRun, e: WalkEntry, desc: string): boolean {
    const out = pt.kvm_pte_valid(e.lo) ? pt.kvm_pte_to_pfn(e.lo, e.hi) : -1;
    return desc === run.desc && e.addr === run.end && (out < 0 || out === run.nextOut);
  }

  /** The dump of a table (or of the input range [from, from + nr)), one line per run. */
  ptdump(pgt: KvmPgtable, from = 0, nr = pgt.ia_pages): string[] {
    const lines: string[] = [];
    const run: PtdumpRun = { start: 0, end: 0, desc: '', nextOut: -1 };
    const flush = () => {
      if (run.desc !== '') lines.push(`${hexAddr(run.start)}-${hexAddr(run.end)}  ${ptdump_size(run.end - run.start)}  ${run.desc}`);
    };
    pgt.walk(from, nr, {
      leaf: (e) => {
        const d = this.describe(e);
        const size = pt.kvm_granule_pages(e.level);
        const out = pt.kvm_pte_valid(e.lo) ? pt.kvm_pte_to_pfn(e.lo, e.hi) : -1;
        if (this.continues_run(run, e, d)) {
          run.end += size;
        } else {
          flush();
          run.start = e.addr;
          run.end = e.addr + size;
          run.desc = d;
        }
        run.nextOut = out < 0 ? -1 : out + size;
      },
    });
    flush();
    return lines;
  }
}

const standalone = new KvmPtdump();

/**
 * The dump of a table (or of the input range [from, from + nr)). Runs merge entries with the same
 * description whose input ranges are contiguous and whose output addresses continue each other.
 */
export function ptdump(pgt: KvmPgtable, from = 0, nr = pgt.ia_pages): string[] {
  return standalone.ptdump(pgt, from, nr);
}

const instances = new WeakMap<Hyp, KvmPtdump>();

/** The ptdump of a hyp instance (one per instance, so that a bug can replace its methods). */
export function ptdumpOf(hyp: Hyp): KvmPtdump {
  let d = instances.get(hyp);
  if (!d) instances.set(hyp, (d = new KvmPtdump()));
  return d;
}
