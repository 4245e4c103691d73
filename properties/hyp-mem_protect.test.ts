// mem_protect.ts directly: effects the model cannot see (which block size the host's idmap picks,
// that the host's write lands and nothing else changes) and situations the generators rarely build
// (a page next to a VM's pages, pins over several pages, rule 1 at the edges of two regions).
import { describe, expect, test } from 'vitest';
import { handle_host_hcall } from '../hyp/hyp-main';
import { addressPfn, isCellAddress } from '../hyp/memory';
import { KVM_LEVEL_4K, kvm_pte_to_pfn, kvm_pte_valid } from '../hyp/pgtable';
import { Pkvm } from '../hyp/pkvm';
import { DEFAULT_CONFIG, PA_PFNS, VM_HANDLE_OFFSET, type MachineConfig } from '../types/config';
import { EINVAL, EPERM } from '../types/errno';
import { HYP_PANIC, U64_PFNS } from '../types/kernel';
import { TWO_REGIONS } from './hyp-fixtures';

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
    expect(hyp.host_mmu.get_leaf(0x40002).level).toBe(KVM_LEVEL_4K);
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
    const pageWrites = hyp.mem.diffSince(mark).filter(([addr]) => !isCellAddress(addr) && addressPfn(addr) !== hyp.layout.hostPool[0]);
    expect(pageWrites.filter(([addr]) => addressPfn(addr) < hyp.layout.carveout[0])).toEqual([]);
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

  test('pins and unpins of several pages count each page; unpinning a page without a pin panics and changes nothing', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    for (const p of [0x40100, 0x40101]) expect(hyp.__pkvm_host_share_hyp(p)).toBe(0);
    const call = (c: 'hyp_pin_shared_mem' | 'hyp_unpin_shared_mem', pfn: number, nr_pages: number) => handle_host_hcall(hyp, { call: c, args: { pfn, nr_pages } });
    expect(call('hyp_pin_shared_mem', 0x40100, 2)).toBe(0);
    expect(call('hyp_unpin_shared_mem', 0x40100, 2)).toBe(0);
    expect(call('hyp_unpin_shared_mem', 0x40100, 1)).toBe(HYP_PANIC);
    expect(call('hyp_pin_shared_mem', 0x40101, 1)).toBe(0);
    expect(call('hyp_unpin_shared_mem', 0x40100, 2)).toBe(HYP_PANIC); // 0x40100 holds no pin
    expect([hyp.vmemmap.refcount(0x40100), hyp.vmemmap.refcount(0x40101)]).toEqual([0, 1]);
    expect(call('hyp_unpin_shared_mem', 0x40101, 1)).toBe(0);
  });

  test('rule 1 at the regions\' edges and at the top of the physical address space', () => {
    const hyp = new Pkvm(TWO_REGIONS);
    expect(hyp.check_range_allowed_memory(0x401ff, 1)).toBe(0);
    expect(hyp.check_range_allowed_memory(0x401ff, 2)).toBe(-EINVAL); // runs into the hole
    expect(hyp.check_range_allowed_memory(0x40200, 0x200)).toBe(-EPERM); // exactly the hole
    expect(hyp.check_range_allowed_memory(0x40200, 0x201)).toBe(-EINVAL); // the hole and a page of region 2
    expect(hyp.check_range_allowed_memory(0x3ffff, 1)).toBe(-EPERM);
    expect(hyp.check_range_allowed_memory(0x3ffff, 2)).toBe(-EINVAL);
    expect(hyp.check_range_allowed_memory(0x40000, 0x200)).toBe(0);
    expect(hyp.check_range_allowed_memory(0x40400, 0x1000)).toBe(0);
    expect(hyp.check_range_allowed_memory(0x40400, 0x1001)).toBe(-EINVAL);
    expect(hyp.check_range_allowed_memory(0x41400, 1)).toBe(-EPERM);
    expect(hyp.check_range_allowed_memory(PA_PFNS - 1, 1)).toBe(-EPERM);
    expect(hyp.check_range_allowed_memory(PA_PFNS - 1, 2)).toBe(-EPERM); // 6.16: the last gap runs to the top of u64
    expect(hyp.find_mem_range(0x40300)).toEqual({ start: 0x40200, end: 0x40400, memory: false });
    expect(hyp.find_mem_range(0x10)).toEqual({ start: 0, end: 0x40000, memory: false });
    expect(hyp.find_mem_range(0x40401)).toEqual({ start: 0x40400, end: 0x41400, memory: true });
    expect(hyp.find_mem_range(0x41400)).toEqual({ start: 0x41400, end: U64_PFNS, memory: false });
    expect(hyp.__pkvm_host_share_hyp(PA_PFNS - 1)).toBe(-EPERM);
    expect(hyp.__pkvm_host_donate_hyp(0x401ff, 2)).toBe(-EINVAL);
  });
});
