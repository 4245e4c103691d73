// How often snapshot calls reach the boundaries that matter (measured over real runs, since the
// table count a call needs is a property of the host stage-2's shape): a used-pages array exactly
// full, one entry short, one entry long, or too short at all; a cyclic memcache list that hyp actually walks into.
import type { SnapshotArgs } from '../../types/calls';
import { usedArrayEntries, type SnapshotEffect } from '../../model/snapshot';

export class SnapshotStats {
  calls = 0;
  /** Calls that reached the copy (the size checks passed). */
  copied = 0;
  exactlyFull = 0;
  oneShort = 0;
  oneLong = 0;
  /** The copy needed more entries than the array has (recording stops at its end). */
  overflow = 0;
  /** mc_tail points back into the list and the claimed nr_pages walks past the last page. */
  cyclic = 0;

  record(a: SnapshotArgs, eff: SnapshotEffect): void {
    this.calls++;
    const tailIdx = a.mc.indexOf(a.mc_tail);
    if (a.mc_tail !== 0 && tailIdx >= 0 && a.mc_nr_pages > a.mc.length) this.cyclic++;
    if (eff.result < 0) return;
    this.copied++;
    const need = eff.consumed.length;
    const cap = usedArrayEntries(a.num_used_pages);
    if (cap === need) this.exactlyFull++;
    if (cap === need - 1) this.oneShort++;
    if (cap === need + 1) this.oneLong++;
    if (cap < need) this.overflow++;
  }

  reset(): void {
    Object.assign(this, { calls: 0, copied: 0, exactlyFull: 0, oneShort: 0, oneLong: 0, overflow: 0, cyclic: 0 });
  }
}

/** Shared counters, reset by whoever measures. */
export const SNAPSHOT_STATS = new SnapshotStats();
