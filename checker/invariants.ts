// The security invariants and the model/hyp agreement checks (DESIGN "How a check runs"). Each
// returns null when it holds, or a Failure naming the property, the page and expected vs found.
import { FAULT_LOG_SIZE, PA_PFNS, VM_HANDLE_OFFSET, VM_VCPUS } from '../types/config';
import { hostState, hypState, page, type GuestMapping, type State } from '../model/state';
import { isMemory } from '../model/range';
import type { Pkvm } from '../hyp/pkvm';
import {
  KVM_PGTABLE_PROT_SW0,
  KVM_PGTABLE_PROT_SW1,
  KVM_PTE_LEAF_ATTR_HI_XN,
  KVM_PTE_LEAF_ATTR_LO_AF,
  KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_DEVICE,
  KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_NORMAL,
  KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R,
  KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W,
  KVM_PTE_LEAF_ATTR_LO_SH_IS,
  KVM_PTE_VALID,
  type KvmPgtable,
  kvm_granule_pages,
  kvm_invalid_pte_owner,
  kvm_pte_to_pfn,
  kvm_pte_valid,
} from '../hyp/pgtable';
import type { MachineConfig } from '../types/config';
import type { Failure } from './suite-types';
import type { EndCheckHints } from './boot-memo';
import { abstractPage, describeGuestLeaf, describeGuestMapping, pageKey } from './abstraction';
import { formatProt, hex } from './vocabulary';
import { eachPageEntry, isValid, isZero, outputPfn, scanStage, translate, type TableVisit } from './walk';
import { P, type PropertyName } from './properties';

const fail = (property: PropertyName, step: number, message: string): Failure => ({ property, step, message });

/** A table visitor that ignores the tables (checkVm after a call audits no tables). */
const noTable: TableVisit = () => {};

// The attributes the host stage-2 gives what it maps (mem_protect.c: PKVM_HOST_MEM_PROT is RWX normal
// memory, PKVM_HOST_MMIO_PROT is RW device memory, never executable), spelled out here bit by bit.
/** Descriptor bits 2-11: MemAttr[3:0], S2AP[1:0], SH[1:0], AF, nG (lo word). */
const LEAF_ATTR_LO = 0xffc;
/** Descriptor bits 52-54: Contiguous and XN[1:0] (hi word); the software bits are checked elsewhere. */
const LEAF_ATTR_HI = 0x7 << (52 - 32);
const RW = KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R | KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W;
const HOST_MEM = { lo: KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_NORMAL | RW | KVM_PTE_LEAF_ATTR_LO_SH_IS | KVM_PTE_LEAF_ATTR_LO_AF, hi: 0, what: 'normal memory, RWX, inner shareable' };
const HOST_MMIO = { lo: KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_DEVICE | RW | KVM_PTE_LEAF_ATTR_LO_AF, hi: KVM_PTE_LEAF_ATTR_HI_XN, what: 'device memory, RW, execute-never' };

/**
 * What is wrong with the attributes of a valid host stage-2 leaf covering [addr, addr + granule),
 * given what the machine says those pages are (memory or MMIO), or null when they are right. A block
 * that holds both memory and MMIO is wrong whatever its attributes.
 */
export function hostLeafAttrProblem(config: MachineConfig, addr: number, level: number, lo: number, hi: number): string | null {
  const end = addr + kvm_granule_pages(level);
  const where = `host stage-2 leaf at ${hex(addr)} (level ${level})`;
  if (config.memory.some(([f, n]) => (f > addr && f < end) || (f + n > addr && f + n < end))) return `${where} spans memory and MMIO`;
  const want = isMemory(config, addr) ? HOST_MEM : HOST_MMIO;
  if ((lo & LEAF_ATTR_LO) === want.lo && (hi & LEAF_ATTR_HI) === want.hi) return null;
  return `${where} maps ${want === HOST_MEM ? 'memory' : 'MMIO'} with attributes lo 0x${(lo & LEAF_ATTR_LO).toString(16)} hi 0x${((hi & LEAF_ATTR_HI) >>> 0).toString(16)}; want ${want.what} (lo 0x${want.lo.toString(16)} hi 0x${(want.hi >>> 0).toString(16)})`;
}

/** A page's host stage-2 leaf, if valid, carries the attributes of what the page is. */
function checkHostAttrs(config: MachineConfig, host: { level: number; lo: number; hi: number }, pfn: number, step: number): Failure | null {
  if (!isValid(host)) return null;
  const size = kvm_granule_pages(host.level);
  const problem = hostLeafAttrProblem(config, pfn - (pfn % size), host.level, host.lo, host.hi);
  return problem ? fail(P.hostLeafAttributes, step, problem) : null;
}

/** Model and hyp agree on one page, and the host and hyp can reach it exactly as its states say. */
export function checkPage(model: State, hyp: Pkvm, pfn: number, step: number): Failure | null {
  if (!isMemory(model.config, pfn)) return pfn < PA_PFNS ? checkHostAttrs(model.config, translate(hyp.mem, hyp.host_mmu, pfn), pfn, step) : null;
  const want = page(model, pfn);
  const host = translate(hyp.mem, hyp.host_mmu, pfn);
  const attrs = checkHostAttrs(model.config, host, pfn, step);
  if (attrs) return attrs;
  const hypLeaf = translate(hyp.mem, hyp.hyp_pgt, pfn);
  const got = abstractPage(hyp, pfn, host, hypLeaf);
  const same = want.owner === got.owner && want.use === got.use && want.hyp === got.hyp && want.ffa === got.ffa && want.guests === got.guests && want.pins === got.pins;
  if (!same) return fail(P.stateAgrees, step, `pfn ${hex(pfn)}: model ${pageKey(want)}, hyp ${pageKey(got)}`);
  // The host reaches a page through a valid identity leaf, or a zero entry that its fault would map.
  const hostReaches = (isValid(host) && outputPfn(host, pfn) === pfn) || isZero(host);
  const hs = hostState(want);
  if (hostReaches !== (hs === 'OWNED' || hs === 'SHARED_OWNED'))
    return fail(P.hostReachesOnlyItsPages, step, `pfn ${hex(pfn)}: host state ${hs} but the host stage-2 ${hostReaches ? 'lets the host reach it' : 'blocks it'}`);
  if (isValid(host) && ((host.hi & KVM_PGTABLE_PROT_SW0) !== 0) !== (hs === 'SHARED_OWNED'))
    return fail(P.sharingBookkeeping, step, `pfn ${hex(pfn)}: host state ${hs} but the stage-2 software bits say ${(host.hi & KVM_PGTABLE_PROT_SW0) !== 0 ? 'SHARED_OWNED' : 'OWNED'}`);
  const ys = hypState(want);
  const hypMaps = isValid(hypLeaf) && outputPfn(hypLeaf, pfn) === pfn;
  if (hypMaps !== (ys === 'OWNED' || ys === 'SHARED_BORROWED'))
    return fail(P.hypMapsOnlyItsPages, step, `pfn ${hex(pfn)}: hyp state ${ys} but hyp's stage-1 ${hypMaps ? 'maps' : 'does not map'} it`);
  return null;
}

/** A guest mapping read from the guest stage-2 (undefined if unmapped). */
function guestLeaf(hyp: Pkvm, pgt: KvmPgtable, gfn: number): string | undefined {
  const t = translate(hyp.mem, pgt, gfn);
  return isZero(t) ? undefined : describeGuestLeaf(t.lo, t.hi, t.level, outputPfn(t, gfn) - kvm_pte_to_pfn(t.lo, t.hi));
}

/**
 * The guest mappings of one VM agree: all of them, or only at `gfns` (after a call that touched just
 * those). A whole check reports the guest stage-2's table pages to `onTable`.
 */
export function checkVm(model: State, hyp: Pkvm, handle: number, step: number, gfns?: readonly number[], onTable: TableVisit = noTable): Failure | null {
  const vm = model.vms.get(handle);
  const hypVm = hyp.vm(handle);
  if (!vm !== !hypVm) return fail(P.stateAgrees, step, `vm ${hex(handle)}: model ${vm ? 'has it' : 'has no such VM'}, hyp ${hypVm ? 'has it' : 'has no such VM'}`);
  if (!vm || !hypVm) return null;
  if (vm.first !== hypVm.first || vm.nr !== hypVm.nr)
    return fail(P.stateAgrees, step, `vm ${hex(handle)}: model pages ${hex(vm.first)}+${vm.nr}, hyp ${hex(hypVm.first)}+${hypVm.nr}`);
  if (gfns !== undefined) {
    for (const gfn of gfns) {
      if (gfn >= hypVm.pgt.ia_pages) continue; // outside the guest IPA space: the call was refused
      const m = vm.gfns.get(gfn);
      const t = translate(hyp.mem, hypVm.pgt, gfn);
      if (m ? sameGuestMapping(m, t.lo, t.hi, t.level, outputPfn(t, gfn) - kvm_pte_to_pfn(t.lo, t.hi)) : isZero(t)) continue;
      const want = m ? describeGuestMapping(m.pfn, m.nr, formatProt(m.prot), m.young) : 'unmapped';
      return fail(P.stateAgrees, step, `vm ${hex(handle)} gfn ${hex(gfn)}: model ${want}, hyp ${guestLeaf(hyp, hypVm.pgt, gfn) ?? 'unmapped'}`);
    }
    return null;
  }
  // The whole stage-2: every leaf against the model's mapping of each gfn it covers, numerically
  // (the text is built only to report a difference), and its tables to `onTable`.
  let mapped = 0;
  let bad: Failure | null = null;
  scanStage(hyp.mem, hypVm.pgt, onTable, (addr, level, lo, hi) => {
    const n = kvm_granule_pages(level);
    mapped += n;
    for (let i = 0; i < n && bad === null; i++) {
      const m = vm.gfns.get(addr + i);
      if (m && sameGuestMapping(m, lo, hi, level, i)) continue;
      const want = m ? describeGuestMapping(m.pfn, m.nr, formatProt(m.prot), m.young) : 'unmapped';
      bad = fail(P.stateAgrees, step, `vm ${hex(handle)} gfn ${hex(addr + i)}: model ${want}, hyp ${describeGuestLeaf(lo, hi, level, i)}`);
    }
  });
  if (bad) return bad;
  if (mapped !== vm.gfns.size) return fail(P.stateAgrees, step, `vm ${hex(handle)}: model maps ${vm.gfns.size} gfns, hyp's stage-2 maps ${mapped}`);
  return null;
}

/** The vCPU loaded on the CPU: the same VM and index (or none) in model and hyp. */
export function checkLoadedVcpu(model: State, hyp: Pkvm, step: number): Failure | null {
  const want = model.loaded;
  // Compared as hyp's cell encodes it (no allocation: this runs after every call).
  if (hyp.loaded_vcpu_code() === (want === null ? 0 : 1 + (want.vm - VM_HANDLE_OFFSET) * VM_VCPUS + want.vcpu)) return null;
  const got = hyp.loaded_vcpu();
  const say = (v: { vm: number; vcpu: number } | null) => (v ? `vCPU ${v.vcpu} of vm ${hex(v.vm)}` : 'no vCPU');
  return fail(P.stateAgrees, step, `loaded vCPU: model ${say(want)}, hyp ${say(got)}`);
}

/** A valid guest leaf maps the page at `offset` in it exactly as the model's mapping says. */
function sameGuestMapping(m: GuestMapping, lo: number, hi: number, level: number, offset: number): boolean {
  return (
    kvm_pte_valid(lo) &&
    kvm_pte_to_pfn(lo, hi) + offset === m.pfn &&
    kvm_granule_pages(level) === m.nr &&
    ((lo & KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R) !== 0) === m.prot.r &&
    ((lo & KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W) !== 0) === m.prot.w &&
    ((hi & KVM_PTE_LEAF_ATTR_HI_XN) === 0) === m.prot.x &&
    ((lo & KVM_PTE_LEAF_ATTR_LO_AF) !== 0) === m.young
  );
}

/** After one host access: the log's counters and newest entry (the whole log is compared at the end). */
export function checkFaultLogTail(model: State, hyp: Pkvm, step: number): Failure | null {
  const got = hyp.faults.tail();
  const want = model.faults;
  const same = got.count === want.entries.length && got.last === (want.entries[want.entries.length - 1] ?? -1) && got.warned === want.warned && got.dropped === want.dropped && got.aborts === want.aborts;
  return same ? null : checkFaultLog(model, hyp, step);
}

export function checkFaultLog(model: State, hyp: Pkvm, step: number): Failure | null {
  const got = hyp.faults.view();
  const want = model.faults;
  const show = (l: typeof got) => `${l.entries.length} entries, warned ${l.warned}, dropped ${l.dropped}, aborts ${l.aborts}`;
  const same = got.warned === want.warned && got.dropped === want.dropped && got.aborts === want.aborts && got.entries.length === want.entries.length && got.entries.every((e, i) => e === want.entries[i]);
  if (!same) return fail(P.faultLogAgrees, step, `model ${show(want)}; hyp ${show(got)}`);
  if (got.entries.length > FAULT_LOG_SIZE || new Set(got.entries).size !== got.entries.length)
    return fail(P.faultLogBounded, step, `${got.entries.length} entries, ${new Set(got.entries).size} distinct`);
  if (got.warned !== got.dropped > 0 || (got.dropped > 0 && got.entries.length < FAULT_LOG_SIZE))
    return fail(P.faultLogBounded, step, `warned ${got.warned} with ${got.dropped} dropped and ${got.entries.length} entries`);
  return null;
}

/**
 * Audits table pages as the scans of every stage report them (`visit(stage name)` is the scans'
 * table visitor): each one hyp's, used once, refcounted 1 + its entries. `result()` gives the first
 * violation, or else checks that no pool page is allocated without a table using it (a leak).
 */
function tableAudit(model: State, hyp: Pkvm, step: number) {
  const seen = new Set<number>();
  let failure: Failure | null = null;
  const check = (name: string, t: number, entries: number): Failure | null => {
    if (seen.has(t)) return fail(P.tablePagesHypOwned, step, `${name}: table page ${hex(t)} is used twice`);
    seen.add(t);
    const p = page(model, t);
    if (p.owner !== 'hyp' || p.use === 'free') return fail(P.tablePagesHypOwned, step, `${name}: table page ${hex(t)} is not a page hyp uses (model: ${pageKey(p)})`);
    if (hyp.vmemmap.refcount(t) !== entries + 1) return fail(P.tableRefcount, step, `${name}: table page ${hex(t)} has ${entries} entries but refcount ${hyp.vmemmap.refcount(t)}`);
    return null;
  };
  return {
    visit: (name: string): TableVisit => (t, entries) => {
      failure ??= check(name, t, entries);
    },
    result(): Failure | null {
      if (failure) return failure;
      for (const pool of [hyp.host_pool, hyp.hyp_pool, hyp.guest_reserve])
        for (const p of pool.inUse()) if (!seen.has(p)) return fail(P.pagesConserved, step, `pool "${pool.name}": page ${hex(p)} is allocated but no table uses it (leak)`);
      return null;
    },
  };
}

/**
 * hyp's carve-out, in one range walk per stage: every page annotated as hyp's in the host stage-2
 * (so the host can reach none of hyp's own memory) and mapped OWNED at EL2.
 */
export function checkCarveout(hyp: Pkvm, step: number): Failure | null {
  const [first, nr] = hyp.layout.carveout;
  let bad: Failure | null = null;
  eachPageEntry(hyp.mem, hyp.host_mmu, first, nr, (p, lo, hi, level) => {
    if (level === 3 && (lo & KVM_PTE_VALID) === 0 && kvm_invalid_pte_owner(lo) === 1) return true;
    bad = fail(P.hostReachesOnlyItsPages, step, `pfn ${hex(p)} of hyp's carve-out: host stage-2 entry at level ${level} is 0x${(hi >>> 0).toString(16)}_${(lo >>> 0).toString(16).padStart(8, '0')}, not a hyp annotation`);
    return false;
  });
  if (bad) return bad;
  eachPageEntry(hyp.mem, hyp.hyp_pgt, first, nr, (p, lo, hi, level) => {
    if (level === 3 && (lo & KVM_PTE_VALID) !== 0 && (hi & (KVM_PGTABLE_PROT_SW0 | KVM_PGTABLE_PROT_SW1)) === 0 && kvm_pte_to_pfn(lo, hi) === p) return true;
    bad = fail(P.hypMapsOnlyItsPages, step, `pfn ${hex(p)} of hyp's carve-out is not mapped OWNED at EL2`);
    return false;
  });
  return bad;
}

/**
 * Everything, at the end of a sequence: the carve-out (unless `hints` say that its descriptors are
 * the ones that passed at boot); every page either side knows of (the model's non-default pages,
 * and every page hyp's tables annotate, share or map at EL2), found in one scan per stage that also
 * audits the table pages; the VMs; the fault log.
 */
export function checkAll(model: State, hyp: Pkvm, step: number, hints?: EndCheckHints): Failure | null {
  const carve = hints?.carveoutUnchanged ? null : checkCarveout(hyp, step);
  if (carve) return carve;
  const [first, nr] = hyp.layout.carveout;
  const tables = tableAudit(model, hyp, step);
  const pages = new Set<number>();
  const add = (addr: number, level: number) => {
    for (let p = addr; p < addr + kvm_granule_pages(level); p++) if (p < first || p >= first + nr) pages.add(p);
  };
  const carveout = [first, first + nr] as const; // checked above, in both stages
  let attrs: Failure | null = null;
  scanStage(hyp.mem, hyp.host_mmu, tables.visit('host stage-2'), (addr, level, lo, hi) => {
    if ((lo & KVM_PTE_VALID) === 0 || (hi & KVM_PGTABLE_PROT_SW0) !== 0) add(addr, level);
    if ((lo & KVM_PTE_VALID) !== 0 && attrs === null) {
      const problem = hostLeafAttrProblem(model.config, addr, level, lo, hi);
      if (problem) attrs = fail(P.hostLeafAttributes, step, problem);
    }
  }, carveout, hints?.hostScan);
  if (attrs) return attrs;
  scanStage(hyp.mem, hyp.hyp_pgt, tables.visit('hyp stage-1'), add, carveout, hints?.hypScan);
  for (const pfn of model.pages.keys()) if (pfn < first || pfn >= first + nr) pages.add(pfn);
  for (const pfn of [...pages].sort((a, b) => a - b)) {
    if (pfn >= PA_PFNS) continue;
    const f = checkPage(model, hyp, pfn, step);
    if (f) return f;
  }
  const loaded = checkLoadedVcpu(model, hyp, step);
  if (loaded) return loaded;
  const handles = new Set([...model.vms.keys(), ...hyp.vms().map((v) => v.handle)]);
  for (const h of handles) {
    const f = checkVm(model, hyp, h, step, undefined, tables.visit(`vm ${hex(h)}`));
    if (f) return f;
  }
  return checkFaultLog(model, hyp, step) ?? tables.result();
}
