// The end-of-sequence check replays table pages not written since boot from a record made at boot
// (checker/boot-memo.ts) instead of reading them. That shortcut must be invisible: after any
// sequence, a scan with the boot record reports exactly what a scan that reads every table reports.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { BootMemo } from '../checker/boot-memo';
import { makeLockstep } from '../checker/suites';
import { runSequence } from '../checker/sequence';
import { resolve, sequenceArb } from '../checker/generators';
import { scanStage, type ScanMemo } from '../checker/walk';
import type { KvmPgtable } from '../hyp/pgtable';
import type { PhysMem } from '../hyp/memory';
import { SEED } from './seed';

/** What a scan reports, in order: tables with their entries and range, leaves with their words. */
function report(mem: PhysMem, pgt: KvmPgtable, quiet: readonly [number, number], memo?: ScanMemo): string[] {
  const out: string[] = [];
  scanStage(mem, pgt, (t, entries, base, span) => out.push(`T ${t} ${entries} ${base} ${span}`), (addr, level, lo, hi) => out.push(`L ${addr} ${level} ${lo} ${hi}`), quiet, memo);
  return out;
}

describe('the boot record of the end check', () => {
  // A bug that writes where it should not exercises tables changed in unusual ways.
  test.each([null, 'block-not-split', 'idmap-block-over-foreign-page'])('replaying unwritten tables reports what reading them does (bug: %s)', (bug) => {
    const ls = makeLockstep(bug);
    const memo = new BootMemo(ls.hyp);
    const [first, nr] = ls.hyp.layout.carveout;
    const quiet = [first, first + nr] as const;
    let replayed = 0;
    fc.assert(
      fc.property(sequenceArb(40), (seq) => {
        runSequence(ls, seq, resolve);
        const hints = memo.hints(ls.hyp.mem.writtenPages(0));
        for (const [pgt, m] of [[ls.hyp.host_mmu, hints.hostScan], [ls.hyp.hyp_pgt, hints.hypScan]] as const) {
          const read = report(ls.hyp.mem, pgt, quiet);
          let used = 0;
          const unchanged = m.unchanged;
          m.unchanged = (t) => (unchanged(t) ? (used++, true) : false);
          expect(report(ls.hyp.mem, pgt, quiet, m).sort()).toEqual(read.sort());
          m.unchanged = unchanged;
          replayed += used;
        }
      }),
      { seed: SEED, numRuns: 150 },
    );
    expect(replayed).toBeGreaterThan(100); // the shortcut was really taken
  });
});
