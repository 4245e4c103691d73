// ptdump (hyp/ptdump.ts) of a hand-built table: the lockstep suites compare ptdump of the snapshot's
// copy with ptdump of the host stage-2, so a mutant of ptdump itself would survive there.
import { describe, expect, test } from 'vitest';
import * as pt from '../hyp/pgtable';
import type { KvmPgtable } from '../hyp/pgtable';
import { ptdump, ptdump_size } from '../hyp/ptdump';
import { PAGE_BYTES, standaloneTable } from './hyp-fixtures';

const NORMAL = pt.KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_NORMAL;
const DEVICE = pt.KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_DEVICE;
const R = pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R;
const W = pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W;
const XN = pt.KVM_PTE_LEAF_ATTR_HI_XN;
const SW0 = pt.KVM_PGTABLE_PROT_SW0;
const SW1 = pt.KVM_PGTABLE_PROT_SW1;

/** A valid leaf (block at levels 1 and 2, page at level 3) mapping `ia` to `out`. */
function mapLeaf(pgt: KvmPgtable, ia: number, level: number, out: number, lo: number, hi = 0): void {
  pgt.set_entry(ia, level, pt.kvm_init_valid_leaf_pte(out, { lo, hi }, level));
}
/** An ownership annotation: an invalid level-3 entry carrying the owner id in bits [9:2]. */
const annotate = (pgt: KvmPgtable, ia: number, owner: number) => pgt.set_entry(ia, pt.KVM_LEVEL_4K, pt.kvm_init_invalid_leaf_owner(owner));
const pa = (pfn: number) => `0x${(pfn * PAGE_BYTES).toString(16).padStart(16, '0')}`;

describe('ptdump', () => {
  test('sizes print in the largest unit that divides them', () => {
    expect([1, 3, 256, 512, 1536, 0x40000, 0x40000 + 512, 3 * 0x40000].map(ptdump_size)).toEqual(['4K', '12K', '1M', '2M', '6M', '1G', '1026M', '3G']);
  });

  test('an empty table dumps nothing', () => {
    expect(ptdump(standaloneTable().pgt)).toEqual([]);
  });

  test('one line per run: type, permissions, attributes, state or owner; runs need the same description, contiguous input and continuing output', () => {
    const pgt = standaloneTable().pgt;
    mapLeaf(pgt, 0, 1, 0, DEVICE | R | W, XN); // 1 GiB of MMIO
    mapLeaf(pgt, 0x40000, 2, 0x40000, NORMAL | R | W); // two 2 MiB blocks, output continuing: one run
    mapLeaf(pgt, 0x40200, 2, 0x40200, NORMAL | R | W);
    mapLeaf(pgt, 0x40400, 2, 0x80000, NORMAL | R | W); // input continues, output does not: a new run
    mapLeaf(pgt, 0x40800, 2, 0x80200, NORMAL | R | W); // output continues, input does not (a hole): a new run
    mapLeaf(pgt, 0x41000, 3, 0, NORMAL | R, SW0); // output from pfn 0, continuing: one run
    mapLeaf(pgt, 0x41001, 3, 1, NORMAL | R, SW0);
    mapLeaf(pgt, 0x41002, 3, 2, NORMAL | W, SW1 | XN);
    mapLeaf(pgt, 0x41003, 3, 3, (5 << 2) | R | W);
    mapLeaf(pgt, 0x41004, 3, 0, (5 << 2) | R | W); // same description, output back to pfn 0: a new run
    annotate(pgt, 0x41005, 1); // annotations have no output: contiguous ones with one owner merge
    annotate(pgt, 0x41006, 1);
    annotate(pgt, 0x41007, 2);
    mapLeaf(pgt, 0x41008, 3, 0x41008, NORMAL);
    expect(ptdump(pgt)).toEqual([
      `${pa(0)}-${pa(0x40000)}  1G  BLOCK  RWNX  DEVICE  OWNED`,
      `${pa(0x40000)}-${pa(0x40400)}  4M  BLOCK  RWx  NORMAL  OWNED`,
      `${pa(0x40400)}-${pa(0x40600)}  2M  BLOCK  RWx  NORMAL  OWNED`,
      `${pa(0x40800)}-${pa(0x40a00)}  2M  BLOCK  RWx  NORMAL  OWNED`,
      `${pa(0x41000)}-${pa(0x41002)}  8K  PAGE  R-x  NORMAL  SHARED_OWNED`,
      `${pa(0x41002)}-${pa(0x41003)}  4K  PAGE  -WNX  NORMAL  SHARED_BORROWED`,
      `${pa(0x41003)}-${pa(0x41004)}  4K  PAGE  RWx  MEMATTR5  OWNED`,
      `${pa(0x41004)}-${pa(0x41005)}  4K  PAGE  RWx  MEMATTR5  OWNED`,
      `${pa(0x41005)}-${pa(0x41007)}  8K  INVALID  ---  -  owner=hyp`,
      `${pa(0x41007)}-${pa(0x41008)}  4K  INVALID  ---  -  owner=id2`,
      `${pa(0x41008)}-${pa(0x41009)}  4K  PAGE  --x  NORMAL  OWNED`,
    ]);
    // A sub-range dumps only its own entries.
    expect(ptdump(pgt, 0x41001, 2)).toEqual([
      `${pa(0x41001)}-${pa(0x41002)}  4K  PAGE  R-x  NORMAL  SHARED_OWNED`,
      `${pa(0x41002)}-${pa(0x41003)}  4K  PAGE  -WNX  NORMAL  SHARED_BORROWED`,
    ]);
  });
});
