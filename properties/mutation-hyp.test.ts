// Directed tests of mem_protect.ts and pkvm.ts that kill mutants the random suites let survive
// (docs/mutation.md): situations the generators rarely build (a page next to a VM's pages, 255 VMs,
// stale host data in a donated PGD, a 2 MiB guest share) and effects the model cannot see (which
// block size the host's idmap picks, that the host's write lands, that every hyp write is reported
// to the "hyp writes only pages it owns" check).
import { describe, expect, test } from 'vitest';
import { Lockstep } from '../checker/lockstep';
import { runSteps } from '../checker/sequence';
import type { TraceStep } from '../checker/vocabulary';
import { Pkvm } from '../hyp/pkvm';
import { kvm_pfn_to_pte_hi, kvm_pfn_to_pte_lo, kvm_pte_to_pfn, kvm_pte_valid } from '../hyp/pgtable';
import { DEFAULT_CONFIG, GUEST_IPA_PFNS, MAX_VMS, PA_PFNS, VM_HANDLE_OFFSET, type MachineConfig } from '../types/config';
import { EINVAL, ENOENT, ENOMEM, EPERM } from '../types/errno';

const RW = { r: true, w: true, x: false };
const TWO_REGIONS: MachineConfig = { memory: [[0x40000, 0x200], [0x40400, 0x1000]], pageSize: 4096 };

/** Runs `f` and returns the pfns hyp wrote meanwhile, as the checker's hook sees them. */
function hypWrites(hyp: Pkvm, f: () => void): Set<number> {
  const seen = new Set<number>();
  hyp.mem.onHypWrite = (pfn) => seen.add(pfn);
  f();
  hyp.mem.onHypWrite = null;
  return seen;
}

describe('host stage-2 idmap', () => {
  test('maps the largest aligned block inside the faulting range, and keeps it mapped', () => {
    const cases: [MachineConfig, number, number, number][] = [
      // [machine, pfn, level, block start]
      [DEFAULT_CONFIG, 0x10, 1, 0], // MMIO [0, 0x40000): exactly one 1 GiB block
      [DEFAULT_CONFIG, 0x40005, 2, 0x40000],
      [DEFAULT_CONFIG, 0x41205, 2, 0x41200], // MMIO after memory: 2 MiB blocks
      [TWO_REGIONS, 0x401ff, 2, 0x40000], // region 1 is exactly one 2 MiB block
      [TWO_REGIONS, 0x40300, 2, 0x40200], // so is the hole
      [TWO_REGIONS, 0x40400, 2, 0x40400],
    ];
    for (const [config, pfn, level, start] of cases) {
      const hyp = new Pkvm(config);
      expect(hyp.host_access(pfn, false)).toBe(0);
      const leaf = hyp.host_mmu.get_leaf(pfn);
      expect([leaf.level, kvm_pte_to_pfn(leaf.lo, leaf.hi)], `0x${pfn.toString(16)}`).toEqual([level, start]);
      expect(kvm_pte_valid(leaf.lo)).toBe(true);
    }
  });

  test('a block never covers a page the host does not own: page granularity next to it', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    expect(hyp.__pkvm_host_donate_hyp(0x40003, 1)).toBe(0);
    expect(hyp.host_access(0x40002, true)).toBe(0);
    expect(hyp.host_mmu.get_leaf(0x40002).level).toBe(3);
    expect(hyp.host_access(0x40003, false)).toBe(-EPERM);
    expect(hyp.faults.view().entries).toEqual([0x40003]);
  });

  test("the host's writes land in its page; reads and MMIO writes change no memory", () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    expect(hyp.host_access(0x40007, true)).toBe(0);
    expect(hyp.mem.read32(0x40007, 0)).toBe((0x40007 ^ 0x5a5a5a5a) >>> 0);
    const mark = hyp.mem.mark();
    expect(hyp.host_access(0x40008, false)).toBe(0);
    expect(hyp.host_access(0x40007, false)).toBe(0);
    expect(hyp.host_access(0x10, true)).toBe(0);
    expect(hyp.mem.read32(0x10, 0)).toBe(0);
    const pageWrites = hyp.mem.diffSince(mark).filter(([addr]) => addr >= 0 && Math.floor(addr / 1024) !== hyp.layout.hostPool[0]);
    expect(pageWrites.filter(([addr]) => Math.floor(addr / 1024) < hyp.layout.carveout[0])).toEqual([]);
  });
});

describe('ownership calls next to other pages', () => {
  test('__pkvm_hyp_donate_host checks only its own pages for HYP_PAGE_INTERNAL', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    expect(hyp.__pkvm_host_donate_hyp(0x40100, 1)).toBe(0);
    expect(hyp.__pkvm_init_vm(0x40101, 3)).toBe(VM_HANDLE_OFFSET);
    expect(hyp.__pkvm_hyp_donate_host(0x40100, 1)).toBe(0);
    expect(hyp.__pkvm_hyp_donate_host(0x40101, 1)).toBe(-EPERM);
    // ... and each page of its range, not the pages before it.
    expect(hyp.__pkvm_host_donate_hyp(0x40104, 2)).toBe(0);
    expect(hyp.__pkvm_hyp_donate_host(0x40104, 2)).toBe(0);
  });

  test('descriptors encode output addresses above 4 GiB (pfn >= 2^20)', () => {
    for (const pfn of [0, 0xfffff, 0x100000, 0x123456, PA_PFNS - 1]) expect(kvm_pte_to_pfn(kvm_pfn_to_pte_lo(pfn), kvm_pfn_to_pte_hi(pfn))).toBe(pfn);
    expect(kvm_pfn_to_pte_hi(0x123456)).toBe(1);
  });

  test('pins and unpins of several pages check each page', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    for (const p of [0x40100, 0x40101]) expect(hyp.__pkvm_host_share_hyp(p)).toBe(0);
    expect(hyp.hyp_pin_shared_mem(0x40100, 2)).toBe(0);
    expect(hyp.hyp_unpin_shared_mem(0x40100, 2)).toBe(0);
    expect(hyp.hyp_unpin_shared_mem(0x40100, 1)).toBe(-EINVAL);
    expect(hyp.hyp_pin_shared_mem(0x40101, 1)).toBe(0);
    expect(hyp.hyp_unpin_shared_mem(0x40100, 2)).toBe(-EINVAL);
    expect(hyp.hyp_unpin_shared_mem(0x40101, 1)).toBe(0);
  });

  test('the pools are named for their error messages', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    expect([hyp.host_pool.name, hyp.hyp_pool.name, hyp.guest_reserve.name]).toEqual(['host stage-2', 'hyp stage-1', 'guest reserve']);
  });
});

describe('protected VMs', () => {
  test('a VM records its handle and size, zeroes its PGD of stale host data, and tables come from its own pool', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    for (const p of [0x40100, 0x40101, 0x40102, 0x40103]) expect(hyp.host_access(p, true)).toBe(0);
    const h = hyp.__pkvm_init_vm(0x40100, 6);
    expect(h).toBe(VM_HANDLE_OFFSET);
    expect([hyp.mem.read32(0x40100, 0), hyp.mem.read32(0x40100, 1)]).toEqual([h, 6]);
    expect([hyp.mem.read32(0x40101, 0), hyp.mem.read32(0x40102, 0)]).toEqual([0, 0]); // the guest PGD
    const vm = hyp.vm(h)!;
    const leaves: number[] = [];
    vm.pgt.walk(0, GUEST_IPA_PFNS, { leaf: (e) => leaves.push(e.addr) });
    expect(leaves).toEqual([]);
    expect(hyp.__pkvm_host_share_guest(0x40200, 0x123, 1, h, RW)).toBe(0);
    const tables: number[] = [];
    vm.pgt.walk(0, GUEST_IPA_PFNS, { tablePre: (e) => tables.push(kvm_pte_to_pfn(e.lo, e.hi)) });
    expect(tables.sort()).toEqual([0x40103, 0x40104]);
    expect(hyp.guest_reserve.inUse().size).toBe(0);
    const h2 = hyp.__pkvm_init_vm(0x40300, 3);
    expect([h2, hyp.mem.read32(0x40300, 0), hyp.mem.read32(0x40300, 1)]).toEqual([VM_HANDLE_OFFSET + 1, VM_HANDLE_OFFSET + 1, 3]);
  });

  test('every page hyp writes for a VM is reported to the write check', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    expect(hyp.host_access(0x40100, true)).toBe(0);
    let h = 0;
    const init = hypWrites(hyp, () => (h = hyp.__pkvm_init_vm(0x40100, 5)));
    expect(init.has(0x40100)).toBe(true);
    const share = hypWrites(hyp, () => expect(hyp.__pkvm_host_share_guest(0x40200, 0x123, 1, h, RW)).toBe(0));
    expect(share.has(0x40103) && share.has(0x40104)).toBe(true); // the guest's new tables
    const teardown = hypWrites(hyp, () => expect(hyp.__pkvm_teardown_vm(h)).toBe(0));
    expect(teardown.has(0x40100)).toBe(true); // the metadata page is scrubbed
    expect(teardown.has(0x40103)).toBe(true);
    // Pages from hyp's pools: a fresh page with old data, and a page back from the free list.
    const pool = hypWrites(hyp, () => {
      hyp.mem.write32('host', hyp.layout.guestReserve[0], 5, 1);
      hyp.guest_reserve.alloc();
      hyp.guest_reserve.free(hyp.layout.guestReserve[0]);
      hyp.guest_reserve.alloc();
    });
    expect(pool.has(hyp.layout.guestReserve[0])).toBe(true);
    expect(hyp.mem.read32(hyp.layout.guestReserve[0], 5)).toBe(0);
  });

  test('teardown gives back exactly the VM pages', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    const h = hyp.__pkvm_init_vm(0x40100, 3);
    expect(hyp.__pkvm_host_donate_hyp(0x40103, 1)).toBe(0);
    expect(hyp.__pkvm_teardown_vm(h)).toBe(0);
    expect(hyp.host_page_state(0x40102)).toBe(0);
    expect(hyp.host_access(0x40103, false)).toBe(-EPERM);
    expect(hyp.__pkvm_hyp_donate_host(0x40103, 1)).toBe(0);
  });

  test('handles name live slots only', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    const h = hyp.__pkvm_init_vm(0x40100, 4);
    expect(hyp.__pkvm_host_share_guest(0x40200, 0x10, 1, h, RW)).toBe(0);
    expect(hyp.__pkvm_host_unshare_guest(0x10, 1, h)).toBe(0);
    for (const bad of [VM_HANDLE_OFFSET - 1, VM_HANDLE_OFFSET + 1, VM_HANDLE_OFFSET + MAX_VMS, VM_HANDLE_OFFSET + MAX_VMS + 1, VM_HANDLE_OFFSET + MAX_VMS + 3]) {
      expect(hyp.__pkvm_host_share_guest(0x40200, 0x10, 1, bad, RW), `0x${bad.toString(16)}`).toBe(-EINVAL);
      expect(hyp.__pkvm_teardown_vm(bad)).toBe(-ENOENT);
      expect(hyp.vm(bad)).toBeNull();
    }
    expect(hyp.vms().map((v) => v.handle)).toEqual([h]);
    expect(hyp.__pkvm_host_share_guest(0x40200, GUEST_IPA_PFNS, 1, h, RW)).toBe(-EINVAL);
    expect(hyp.__pkvm_host_share_guest(0x40200, GUEST_IPA_PFNS - 1, 1, h, RW)).toBe(0);
  });

  test('all MAX_VMS slots can be used, then __pkvm_init_vm fails with -ENOMEM; a freed slot is reused', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    for (let i = 0; i < MAX_VMS; i++) expect(hyp.__pkvm_init_vm(0x40000 + 3 * i, 3)).toBe(VM_HANDLE_OFFSET + i);
    expect(hyp.__pkvm_init_vm(0x40000 + 3 * MAX_VMS, 3)).toBe(-ENOMEM);
    expect(hyp.__pkvm_teardown_vm(VM_HANDLE_OFFSET + 7)).toBe(0);
    expect(hyp.__pkvm_init_vm(0x40000 + 3 * MAX_VMS, 3)).toBe(VM_HANDLE_OFFSET + 7);
    expect(hyp.vms().length).toBe(MAX_VMS);
  });

  test('a 2 MiB guest share and unshare, in lockstep with the model', () => {
    const steps: TraceStep[] = [
      { call: '__pkvm_init_vm', args: { pfn: 0x40800, nr_pages: 4 } },
      { call: 'host_access', args: { pfn: 0x401ff, write: true } },
      { call: '__pkvm_host_share_guest', args: { pfn: 0x40200, gfn: 0x400, nr_pages: 512, vm: { ref: 1 }, prot: RW } },
      { call: '__pkvm_host_share_guest', args: { pfn: 0x40201, gfn: 0x7, nr_pages: 1, vm: { ref: 1 }, prot: RW } },
      { call: '__pkvm_host_unshare_guest', args: { gfn: 0x400, nr_pages: 512, vm: { ref: 1 } } },
      { call: '__pkvm_host_share_hyp', args: { pfn: 0x40201 } },
      { call: '__pkvm_host_unshare_guest', args: { gfn: 0x7, nr_pages: 1, vm: { ref: 1 } } },
      { call: '__pkvm_host_share_hyp', args: { pfn: 0x40201 } },
      { call: '__pkvm_host_share_hyp', args: { pfn: 0x401ff } },
      { call: '__pkvm_teardown_vm', args: { vm: { ref: 1 } } },
    ];
    const ls = new Lockstep(DEFAULT_CONFIG);
    expect(runSteps(ls, steps).failure).toBeNull();
    expect(ls.results).toEqual([VM_HANDLE_OFFSET, 0, 0, 0, 0, -EPERM, 0, 0, 0, 0]);
  });
});
