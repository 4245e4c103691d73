// A cheap save/restore of the part of a model state the alphabet can change: the relevant pages
// (Page objects are immutable, so saving is copying references), the VMs with their gfn maps, and the
// fault log. Costs O(relevant pages + VMs + gfns) instead of a deep clone of every page.
import type { FaultLog, Page, State, Vm } from '../../model';

export interface ModelSnapshot {
  readonly pages: (Page | undefined)[];
  readonly vms: [number, Vm][];
  readonly faults: FaultLog;
}

export function saveModel(s: State, relevant: readonly number[]): ModelSnapshot {
  const pages = relevant.map((p) => s.pages.get(p));
  const vms: [number, Vm][] = [];
  for (const [h, vm] of s.vms) vms.push([h, { ...vm, gfns: new Map(vm.gfns) }]);
  return { pages, vms, faults: { ...s.faults, entries: [...s.faults.entries] } };
}

/** Puts `s` back to `snap` (which stays valid for further restores). */
export function restoreModel(s: State, relevant: readonly number[], snap: ModelSnapshot): void {
  for (let i = 0; i < relevant.length; i++) {
    const p = snap.pages[i];
    if (p === undefined) s.pages.delete(relevant[i]);
    else s.pages.set(relevant[i], p);
  }
  s.vms.clear();
  for (const [h, vm] of snap.vms) s.vms.set(h, { ...vm, gfns: new Map(vm.gfns) });
  Object.assign(s.faults, { ...snap.faults, entries: [...snap.faults.entries] });
}
