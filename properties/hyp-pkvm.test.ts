// pkvm.ts directly: protected VMs' metadata, pools and handles, situations the generators rarely
// build (255 VMs, stale host data in a donated PGD, a 2 MiB guest share), and that every page hyp
// writes for a VM is reported to the "hyp writes only pages it owns" check.
import { describe, expect, test } from 'vitest';
import { Lockstep } from '../checker/lockstep';
import { runSteps } from '../checker/sequence';
import type { TraceStep } from '../checker/vocabulary';
import { kvm_pte_to_pfn } from '../hyp/pgtable';
import { PKVM_PAGE_OWNED } from '../hyp/mem_protect';
import { Pkvm } from '../hyp/pkvm';
import { handle_host_hcall } from '../hyp/hyp-main';
import { DEFAULT_CONFIG, GUEST_IPA_PFNS, MAX_VMS, VM_HANDLE_OFFSET } from '../types/config';
import { EINVAL, ENOENT, ENOMEM, EPERM, ERANGE } from '../types/errno';
import { hypWrites } from './hyp-fixtures';

const RW = { r: true, w: true, x: false };
/** A share as the host makes it: vCPU 0 of `vm` loaded around the call. */
const shareGuest = (hyp: Pkvm, pfn: number, gfn: number, nr_pages: number, vm: number): number =>
  handle_host_hcall(hyp, { call: '__pkvm_host_share_guest', args: { pfn, gfn, nr_pages, vm, prot: RW } });

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
    expect(shareGuest(hyp, 0x40200, 0x123, 1, h)).toBe(0);
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
    const share = hypWrites(hyp, () => expect(shareGuest(hyp, 0x40200, 0x123, 1, h)).toBe(0));
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
    expect(hyp.host_page_state(0x40102)).toBe(PKVM_PAGE_OWNED);
    expect(hyp.host_access(0x40103, false)).toBe(-EPERM);
    expect(hyp.__pkvm_hyp_donate_host(0x40103, 1)).toBe(0);
  });

  test('handles name live slots only', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    const h = hyp.__pkvm_init_vm(0x40100, 4);
    expect(shareGuest(hyp, 0x40200, 0x10, 1, h)).toBe(0);
    expect(hyp.__pkvm_host_unshare_guest(0x10, 1, h)).toBe(0);
    for (const bad of [VM_HANDLE_OFFSET - 1, VM_HANDLE_OFFSET + 1, VM_HANDLE_OFFSET + MAX_VMS, VM_HANDLE_OFFSET + MAX_VMS + 1, VM_HANDLE_OFFSET + MAX_VMS + 3]) {
      expect(shareGuest(hyp, 0x40200, 0x10, 1, bad), `0x${bad.toString(16)}`).toBe(-EINVAL);
      expect(hyp.__pkvm_teardown_vm(bad)).toBe(-ENOENT);
      expect(hyp.vm(bad)).toBeNull();
    }
    expect(hyp.vms().map((v) => v.handle)).toEqual([h]);
    expect(shareGuest(hyp, 0x40200, GUEST_IPA_PFNS, 1, h)).toBe(-ERANGE); // the guest walk's limit, after the host range
    expect(shareGuest(hyp, 0x40200, GUEST_IPA_PFNS - 1, 1, h)).toBe(0);
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
