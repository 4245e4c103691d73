// A cheap save/restore of the part of a model state the alphabet can change: the relevant pages
// (Page objects are immutable, so saving is copying references), the VMs with their gfn maps, the
// loaded vCPU and the fault log. Restoring compares before it writes, so undoing one transition touches only what that
// transition changed; it costs O(relevant pages + VMs + gfns), never a deep clone of every page.
import type { GuestMapping, LoadedVcpu, Page, State, Vm } from '../../model';

interface VmSave {
  readonly handle: number;
  /** The live Vm object: the model mutates its gfn map in place but never replaces the object. */
  readonly vm: Vm;
  readonly gfns: readonly [number, GuestMapping][];
}

export interface ModelSnapshot {
  readonly pages: (Page | undefined)[];
  readonly vms: readonly VmSave[];
  readonly loaded: LoadedVcpu | null;
  readonly entries: number[];
  readonly entriesLength: number;
  readonly warned: boolean;
  readonly dropped: number;
  readonly aborts: number;
}

export function saveModel(s: State, relevant: readonly number[]): ModelSnapshot {
  const pages = relevant.map((p) => s.pages.get(p));
  const vms: VmSave[] = [];
  for (const [handle, vm] of s.vms) vms.push({ handle, vm, gfns: [...vm.gfns] });
  const f = s.faults;
  return { pages, vms, loaded: s.loaded, entries: f.entries, entriesLength: f.entries.length, warned: f.warned, dropped: f.dropped, aborts: f.aborts };
}

/** True when `vm`'s gfn map holds exactly the saved mappings (GuestMapping objects are never mutated). */
function sameGfns(vm: Vm, saved: readonly [number, GuestMapping][]): boolean {
  if (vm.gfns.size !== saved.length) return false;
  for (const [g, m] of saved) if (vm.gfns.get(g) !== m) return false;
  return true;
}

/** Puts `s` back to `snap` (which stays valid for further restores). */
export function restoreModel(s: State, relevant: readonly number[], snap: ModelSnapshot): void {
  for (let i = 0; i < relevant.length; i++) {
    const p = snap.pages[i];
    if (s.pages.get(relevant[i]) === p) continue;
    if (p === undefined) s.pages.delete(relevant[i]);
    else s.pages.set(relevant[i], p);
  }
  let vmsSame = s.vms.size === snap.vms.length;
  for (const v of snap.vms) {
    if (s.vms.get(v.handle) !== v.vm) vmsSame = false;
    if (!sameGfns(v.vm, v.gfns)) {
      v.vm.gfns.clear();
      for (const [g, m] of v.gfns) v.vm.gfns.set(g, m);
    }
  }
  if (!vmsSame) {
    s.vms.clear();
    for (const v of snap.vms) s.vms.set(v.handle, v.vm);
  }
  s.loaded = snap.loaded;
  // The log's entries array is only appended to, or replaced by a new one when a VM is created.
  const f = s.faults;
  if (f.entries !== snap.entries) f.entries = snap.entries;
  if (snap.entries.length !== snap.entriesLength) snap.entries.length = snap.entriesLength;
  f.warned = snap.warned;
  f.dropped = snap.dropped;
  f.aborts = snap.aborts;
}
