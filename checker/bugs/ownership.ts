// Known one-line defects in the ownership code, each re-introduced by replacing one small method of
// a freshly built hyp instance. hyp/ itself carries no bug flags.
import { EAGAIN, EPERM } from '../../types/errno';
import { MAX_VMS, PTRS_PER_TABLE, VM_VCPUS } from '../../types/config';
import { pinLimit } from '../../types/kernel';
import type { Pkvm } from '../../hyp/pkvm';
import type { GeometryFeature } from '../explore/alphabet';
import * as pt from '../../hyp/pgtable';
import { HYP_PAGE_FFA_SHARED } from '../../hyp/vmemmap';
import { PKVM_PAGE_SHARED_BORROWED, PKVM_PAGE_SHARED_OWNED, pkvm_mkstate } from '../../hyp/mem_protect';

export interface HypBug {
  readonly id: string;
  readonly description: string;
  readonly suite: 'ownership' | 'snapshot';
  /** Why the explorer's alphabet (checker/explore/alphabet.ts) cannot reach the bug, if it cannot. */
  readonly beyondExplorer?: string;
  /** What the explorer needs beyond its default alphabet to reach the bug (`--calls all`, `--geometry`). */
  readonly explorer?: { readonly allCalls?: boolean; readonly geometry?: readonly GeometryFeature[]; readonly vms?: number };
  inject(hyp: Pkvm): void;
}

export const OWNERSHIP_BUGS: readonly HypBug[] = [
  {
    id: 'unshare-ignores-pins',
    description: '__pkvm_host_unshare_hyp does not check that hyp holds no pins (no -EBUSY)',
    suite: 'ownership',
    inject: (h) => {
      h.hyp_check_unpinned = () => 0;
    },
  },
  {
    id: 'block-not-split',
    description: 'a page changing owner inside a host block mapping leaves the block mapped',
    suite: 'ownership',
    inject: (h) => {
      const original = h.host_stage2_set_owner_locked.bind(h);
      h.host_stage2_set_owner_locked = (pfn, nr, owner) => {
        const leaf = h.host_mmu.get_leaf(pfn);
        if (leaf.level < pt.KVM_PGTABLE_LAST_LEVEL && pt.kvm_pte_valid(leaf.lo)) return;
        original(pfn, nr, owner);
      };
    },
  },
  {
    id: 'annotation-wrong-owner',
    description: 'host stage-2 annotations carry the owner id shifted by one bit too few',
    suite: 'ownership',
    inject: (h) => {
      const original = h.host_stage2_set_owner_locked.bind(h);
      h.host_stage2_set_owner_locked = (pfn, nr, owner) => {
        // The annotation's owner field one bit low: hyp's id lands in the descriptor's type bit.
        const wrong: pt.KvmPte = { lo: pt.kvm_init_invalid_leaf_owner(owner).lo >>> 1, hi: 0 };
        for (let i = 0; i < nr; i++) h.host_mmu.set_entry(pfn + i, pt.KVM_LEVEL_4K, wrong);
        if (nr === 0) original(pfn, nr, owner);
      };
    },
  },
  {
    id: 'idmap-block-over-foreign-page',
    description: 'the host fault path maps a block one level too large, over a table holding annotations',
    suite: 'ownership',
    inject: (h) => {
      const original = h.host_stage2_adjust_range.bind(h);
      h.host_stage2_adjust_range = (pfn, range) => {
        const level = original(pfn, range);
        if (level <= h.host_mmu.start_level + 1) return level;
        const size = pt.kvm_granule_pages(level - 1);
        const start = pfn - (pfn % size);
        return pt.kvm_level_supports_block_mapping(level - 1) && start >= range.start && start + size <= range.end ? level - 1 : level;
      };
    },
  },
  {
    id: 'unshare-ffa-keeps-borrower',
    description: '__pkvm_host_unshare_ffa returns the page to the host but does not clear the ffa borrower',
    suite: 'ownership',
    inject: (h) => {
      const original = h.__pkvm_host_unshare_ffa.bind(h);
      h.__pkvm_host_unshare_ffa = (pfn, nr) => {
        const ret = original(pfn, nr);
        if (ret === 0) for (let i = 0; i < nr; i++) h.vmemmap.set_flags(pfn + i, HYP_PAGE_FFA_SHARED, 0);
        return ret;
      };
    },
  },
  {
    id: 'range-is-memory-off-by-one',
    description: 'is_in_mem_range (which range_is_memory and check_range_allowed_memory use) accepts a range ending one page past its memory region',
    suite: 'ownership',
    inject: (h) => {
      h.is_in_mem_range = (end, range) => end > 0 && range.start <= end - 1 && end - 1 <= range.end;
    },
  },
  {
    id: 'idmap-block-assumes-aligned-region',
    description: 'the host fault path checks only that a block ends inside its memory region or MMIO gap, as if every region started 2 MiB-aligned: a block starts below the region, over MMIO',
    suite: 'ownership',
    beyondExplorer: "the explorer's default machine has its region and gaps start on 2 MiB boundaries (explore --config with an unaligned region finds it in one call)",
    inject: (h) => {
      h.host_stage2_adjust_range = (pfn, range) => {
        const leaf = h.host_mmu.get_leaf(pfn);
        if (pt.kvm_pte_valid(leaf.lo)) return -EAGAIN;
        if (leaf.lo !== 0 || leaf.hi !== 0) return -EPERM;
        for (let level = leaf.level; level < pt.KVM_PGTABLE_LAST_LEVEL; level++) {
          const size = pt.kvm_granule_pages(level);
          const start = pfn - (pfn % size);
          if (pt.kvm_level_supports_block_mapping(level) && start + size <= range.end) return level;
        }
        return pt.KVM_PGTABLE_LAST_LEVEL;
      };
    },
  },
  {
    id: 'vm-slots-one-short',
    description: "__pkvm_init_vm's free-slot search stops one slot early: the 255th VM is refused with -ENOMEM",
    suite: 'ownership',
    beyondExplorer: 'the explorer has at most 8 VMs',
    inject: (h) => {
      const original = h.find_free_vm_slot.bind(h);
      h.find_free_vm_slot = () => {
        const slot = original();
        return slot === MAX_VMS - 1 ? -1 : slot;
      };
    },
  },
  {
    id: 'hyp-keeps-el2-mapping',
    description: 'pages leaving hyp (donated back, unshared, torn down) stay mapped in hyp stage-1',
    suite: 'ownership',
    inject: (h) => {
      h.hyp_unmap = () => undefined;
    },
  },
  {
    id: 'guest-share-skips-host-check',
    description: '__pkvm_host_share_guest accepts any host page that is not annotated (shared with hyp or ffa too)',
    suite: 'ownership',
    inject: (h) => {
      h.host_check_guest_shareable = (pfn, nr) => {
        for (let i = 0; i < nr; i++) {
          const { lo } = h.host_mmu.get_leaf(pfn + i);
          if (!pt.kvm_pte_valid(lo) && lo !== 0) return -EPERM;
        }
        return 0;
      };
    },
  },
  {
    id: 'host-share-drops-exec',
    description: 'pages the host shares (or gets back from a share) are remapped RW instead of PKVM_HOST_MEM_PROT\'s RWX: the host loses execute on them',
    suite: 'ownership',
    inject: (h) => {
      h.__host_set_page_state_range = (pfn, nr, state) => {
        // The attributes built from KVM_PGTABLE_PROT_RW: normal memory, but execute-never.
        const rw: pt.KvmPte = { lo: pt.KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_NORMAL | pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R | pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W | pt.KVM_PTE_LEAF_ATTR_LO_SH_IS | pt.KVM_PTE_LEAF_ATTR_LO_AF, hi: pt.KVM_PTE_LEAF_ATTR_HI_XN };
        const attr = pkvm_mkstate(rw, state);
        for (let i = 0; i < nr; i++) h.host_mmu.set_entry(pfn + i, pt.KVM_LEVEL_4K, pt.kvm_init_valid_leaf_pte(pfn + i, attr, pt.KVM_LEVEL_4K));
      };
    },
  },
  {
    id: 'host-mmio-cacheable',
    description: 'PKVM_HOST_MMIO_PROT without KVM_PGTABLE_PROT_DEVICE: the host fault path maps MMIO as normal cacheable memory',
    suite: 'ownership',
    inject: (h) => {
      const mmio: pt.KvmPte = { lo: pt.KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_NORMAL | pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R | pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W | pt.KVM_PTE_LEAF_ATTR_LO_SH_IS | pt.KVM_PTE_LEAF_ATTR_LO_AF, hi: pt.KVM_PTE_LEAF_ATTR_HI_XN };
      const original = h.host_stage2_idmap.bind(h);
      h.host_stage2_idmap = (pfn) => {
        const range = h.find_mem_range(pfn);
        if (range.memory) return original(pfn);
        const level = h.host_stage2_adjust_range(pfn, range);
        if (level < 0) return level;
        const start = pfn - (pfn % pt.kvm_granule_pages(level));
        h.host_mmu.set_entry(start, level, pt.kvm_init_valid_leaf_pte(start, mmio, level));
        return 0;
      };
    },
  },
  {
    id: 'pin-refs-first-page',
    description: 'hyp_pin_shared_mem checks every page of the range, then takes each page\'s reference on the first page (hyp_virt_to_page(start) for cur in the loop)',
    suite: 'ownership',
    inject: (h) => {
      h.hyp_pin_shared_mem = (pfn, nr) =>
        h.transition(
          pfn,
          nr,
          () => h.hyp_page_ref_inc(pfn),
          () => h.__host_check_page_state_range(pfn, nr, PKVM_PAGE_SHARED_OWNED),
          () => h.__hyp_check_page_state_range(pfn, nr, PKVM_PAGE_SHARED_BORROWED),
        );
    },
  },
  {
    id: 'pin-count-wraps',
    description: "hyp_page_ref_inc without its BUG_ON(refcount == USHRT_MAX): a page's 65,536th pin wraps the u16 refcount to 0 instead of panicking, and the page reads as unpinned",
    suite: 'ownership',
    beyondExplorer: 'the explorer pins a page at most --max-pins times, and its pages hold 65,535 pins (explore --config with a small pinLimit finds it)',
    inject: (h) => {
      h.hyp_page_ref_inc = (pfn) => {
        // The count holds pinLimit + 1 values (0 to the limit, 65,535 on the kernel): one more is 0.
        const n = h.vmemmap.refcount(pfn);
        h.vmemmap.page_ref_add(pfn, n >= pinLimit(h.config) ? -n : 1);
      };
    },
  },
  {
    id: 'vm-pool-not-zeroed',
    description: 'a VM\'s stage-2 pool hands out the pages the host donated without zeroing them: the host\'s data becomes guest stage-2 descriptors',
    suite: 'ownership',
    beyondExplorer: 'the explorer\'s host never writes the pages of its VM slots',
    inject: (h) => {
      for (const pool of h.vmPools) pool.clear_fresh_page = () => undefined;
    },
  },
  {
    id: 'effect-stops-at-block-end',
    description: "a ranged call's effect stops at the end of the 2 MiB block it starts in: the pages of a range past it pass the checks and keep their old state",
    suite: 'ownership',
    explorer: { geometry: ['straddle'] },
    inject: (h) => {
      const original = h.effect_range.bind(h);
      h.effect_range = (pfn, nr) => {
        const [from, to] = original(pfn, nr);
        return [from, Math.min(to, from - (from % PTRS_PER_TABLE) + PTRS_PER_TABLE)];
      };
    },
  },
  {
    id: 'block-unshare-first-page',
    description: "__pkvm_host_unshare_guest of a 2 MiB guest block drops the share count of its first page only: the other 511 stay SHARED_OWNED",
    suite: 'ownership',
    explorer: { geometry: ['block'] },
    inject: (h) => {
      const original = h.guest_unmap.bind(h);
      h.guest_unmap = (pgt, gfn, pfn, nr) => original(pgt, gfn, pfn, Math.min(nr, 1));
    },
  },
  {
    id: 'relax-perms-sets-exactly',
    description: '__pkvm_host_relax_perms_guest writes the permissions asked for instead of adding them: a relax to R takes W and X away from the guest',
    suite: 'ownership',
    explorer: { allCalls: true },
    inject: (h) => {
      h.kvm_pgtable_stage2_relax_perms = (pgt, gfn, prot) => {
        const rw = pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R | pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W;
        const set = (prot.r ? pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R : 0) | (prot.w ? pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W : 0);
        pgt.update_leaves(gfn, 1, (e) => ({ lo: (e.lo & ~rw) | set, hi: prot.x ? e.hi & ~pt.KVM_PTE_LEAF_ATTR_HI_XN : e.hi | pt.KVM_PTE_LEAF_ATTR_HI_XN }));
      };
    },
  },
  {
    id: 'young-mkold-skips-blocks',
    description: "__pkvm_host_test_clear_young_guest with mkold clears the access flag of page mappings only: a 2 MiB guest block stays young and reads young again",
    suite: 'ownership',
    explorer: { allCalls: true, geometry: ['block'] },
    inject: (h) => {
      h.kvm_pgtable_stage2_test_clear_young = (pgt, gfn, nr, mkold) => {
        let young = 0;
        pgt.update_leaves(gfn, nr, (e) => {
          if (!(e.lo & pt.KVM_PTE_LEAF_ATTR_LO_AF)) return e;
          young = 1;
          return mkold && e.level === pt.KVM_PGTABLE_LAST_LEVEL ? { lo: e.lo & ~pt.KVM_PTE_LEAF_ATTR_LO_AF, hi: e.hi } : e;
        });
        return young;
      };
    },
  },
  {
    id: 'vcpu-load-replaces-loaded',
    description: "pkvm_load_hyp_vcpu without its \"already loaded on this CPU\" check: a second load replaces the loaded vCPU, whose reference on its VM is never dropped",
    suite: 'ownership',
    explorer: { allCalls: true },
    inject: (h) => {
      const load = h.pkvm_load_hyp_vcpu.bind(h);
      h.pkvm_load_hyp_vcpu = (handle, idx) => {
        const loaded = h.loaded_vcpu();
        if (loaded === null || h.vm(handle) === null || idx >= VM_VCPUS) return load(handle, idx);
        const put = h.pkvm_put_hyp_vcpu.bind(h);
        // Forget the loaded vCPU without dropping its VM's reference, then load the new one.
        h.vmemmap.page_ref_add(h.vm(loaded.vm)!.first, 1);
        put();
        load(handle, idx);
      };
    },
  },
  {
    id: 'teardown-ignores-loaded-vcpu',
    description: "__pkvm_teardown_vm without its WARN_ON(hyp_page_count(hyp_vm)): a VM is torn down under its loaded vCPU",
    suite: 'ownership',
    explorer: { allCalls: true },
    inject: (h) => {
      h.check_vm_unreferenced = () => undefined;
    },
  },
];
