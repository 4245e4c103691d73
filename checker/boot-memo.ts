// What the end-of-sequence check may reuse from boot. The journal tells which pages a sequence wrote;
// a page it did not write reads exactly as at boot, so the check need not read it again: the table
// pages of hyp's stage-1 and the host stage-2 are scanned at boot and replayed from that record
// while unwritten, and the carve-out's descriptors are compared with boot's instead of walked. This
// keeps the per-call cost of the check independent of the size of memory (the carve-out, written at
// boot and in a correct run never again, grows with it).
import type { Pkvm } from '../hyp/pkvm';
import { checkCarveout } from './invariants';
import { scanStage, type ScanMemo } from './walk';

/** Hints for checkAll: skip the carve-out walk, and memos for the host and hyp scans. */
export interface EndCheckHints {
  readonly carveoutUnchanged: boolean;
  readonly hostScan: ScanMemo;
  readonly hypScan: ScanMemo;
}

/** The descriptors of one table page that translate part of the carve-out, as they were at boot. */
interface BootEntries {
  readonly table: number;
  readonly fromWord: number;
  readonly toWord: number;
  readonly words: Uint32Array;
}

export class BootMemo {
  private readonly hostScan: ScanMemo = { tables: new Map(), recording: true, unchanged: () => false };
  private readonly hypScan: ScanMemo = { tables: new Map(), recording: true, unchanged: () => false };
  private readonly carveoutEntries: BootEntries[] = [];
  /** The carve-out passed its check at boot (before any bug could act). */
  private readonly carveoutOk: boolean;

  /** Reads hyp as it is now, which must be its boot state (the state a reset returns to). */
  constructor(private readonly hyp: Pkvm) {
    const [first, nr] = hyp.layout.carveout;
    const quiet = [first, first + nr] as const;
    for (const [pgt, memo] of [[hyp.host_mmu, this.hostScan], [hyp.hyp_pgt, this.hypScan]] as const) {
      scanStage(hyp.mem, pgt, (table, _entries, base, span) => {
        if (base >= first + nr || base + span <= first) return;
        const size = span / 512;
        const fromWord = 2 * Math.floor((Math.max(first, base) - base) / size);
        const toWord = 2 * (Math.floor((Math.min(first + nr, base + span) - 1 - base) / size) + 1);
        this.carveoutEntries.push({ table, fromWord, toWord, words: hyp.mem.pageView(table).slice(fromWord, toWord) });
      }, () => {}, quiet, memo);
      memo.recording = false;
    }
    this.carveoutOk = checkCarveout(hyp, 0) === null;
  }

  /** The hints for a check now, given the pages written since boot. */
  hints(written: ReadonlySet<number>): EndCheckHints {
    const unchanged = (table: number) => !written.has(table);
    this.hostScan.unchanged = unchanged;
    this.hypScan.unchanged = unchanged;
    const carveoutUnchanged = this.carveoutOk && this.carveoutEntries.every((e) => unchanged(e.table) || this.sameAsBoot(e));
    return { carveoutUnchanged, hostScan: this.hostScan, hypScan: this.hypScan };
  }

  private sameAsBoot(e: BootEntries): boolean {
    const now = this.hyp.mem.pageView(e.table);
    for (let w = e.fromWord; w < e.toWord; w++) if (now[w] !== e.words[w - e.fromWord]) return false;
    return true;
  }
}
