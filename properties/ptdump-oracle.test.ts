// The checker's oracles for issue 15's blind spots, on hand-built inputs: the ptdump oracle
// (checker/ptdump-oracle.ts) accepts hyp's dump and rejects each way a dump can be wrong, and the host
// leaf attribute rule (checker/invariants.ts) accepts exactly the kernel's memory and MMIO attributes.
import { describe, expect, test } from 'vitest';
import * as pt from '../hyp/pgtable';
import type { KvmPgtable } from '../hyp/pgtable';
import { ptdump } from '../hyp/ptdump';
import { ptdumpProblem } from '../checker/ptdump-oracle';
import { hostLeafAttrProblem } from '../checker/invariants';
import { DEFAULT_CONFIG } from '../types/config';
import { standaloneTable } from './hyp-fixtures';

const MEM = pt.KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_NORMAL | pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R | pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W | pt.KVM_PTE_LEAF_ATTR_LO_SH_IS | pt.KVM_PTE_LEAF_ATTR_LO_AF;
const MMIO = pt.KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_DEVICE | pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R | pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W | pt.KVM_PTE_LEAF_ATTR_LO_AF;
const XN = pt.KVM_PTE_LEAF_ATTR_HI_XN;

const map = (pgt: KvmPgtable, ia: number, level: number, lo: number, hi = 0) => pgt.set_entry(ia, level, pt.kvm_init_valid_leaf_pte(ia, { lo, hi }, level));

/** A host-like table: MMIO below memory, a 2 MiB block, pages OWNED and SHARED_OWNED, annotations. */
function table() {
  const t = standaloneTable();
  map(t.pgt, 0, 1, MMIO, XN);
  map(t.pgt, 0x40000, 2, MEM);
  map(t.pgt, 0x40200, 3, MEM);
  map(t.pgt, 0x40201, 3, MEM, pt.KVM_PGTABLE_PROT_SW0);
  map(t.pgt, 0x40202, 3, MEM);
  for (const p of [0x40300, 0x40301]) t.pgt.set_entry(p, 3, pt.kvm_init_invalid_leaf_owner(1));
  return t;
}

describe('the ptdump oracle', () => {
  test("accepts hyp's ptdump", () => {
    const { mem, pgt } = table();
    expect(ptdump(pgt)).toHaveLength(6);
    expect(ptdumpProblem(mem, pgt, ptdump(pgt), 't')).toBeNull();
    const empty = standaloneTable();
    expect(ptdumpProblem(empty.mem, empty.pgt, [], 't')).toBeNull();
  });

  test('rejects a leaf left out, a merge of unequal leaves, an unmerged run, a wrong size, a hole and a malformed line', () => {
    const { mem, pgt } = table();
    const good = ptdump(pgt);
    const check = (lines: string[]) => ptdumpProblem(mem, pgt, lines, 't');
    expect(check(good.filter((_, i) => i !== 2))).toMatch(/on no ptdump line/);
    // Lines 3-5 (0x40200.. OWNED, SHARED_OWNED, OWNED) printed as one OWNED run.
    expect(check([...good.slice(0, 2), good[2].replace('0x0000000040201000', '0x0000000040203000').replace('4K', '12K'), ...good.slice(5)])).toMatch(/merges the leaf at 0x40201000/);
    // The annotations (one run of two pages) split in two.
    const [a, b] = ['0x0000000040300000-0x0000000040301000  4K', '0x0000000040301000-0x0000000040302000  4K'];
    expect(check([...good.slice(0, 5), `${a}  INVALID  ---  -  owner=hyp`, `${b}  INVALID  ---  -  owner=hyp`])).toMatch(/not merged/);
    expect(check(good.map((l, i) => (i === 1 ? l.replace('  2M  ', '  4M  ') : l)))).toMatch(/the line says 4M/);
    expect(check([...good.slice(0, 5), '0x0000000040300000-0x0000000040303000  12K  INVALID  ---  -  owner=hyp'])).toMatch(/the leaves end at 0x40302000/);
    expect(check([...good.slice(0, 2), good[3], good[2], ...good.slice(4)])).toMatch(/overlaps the line before or is out of order|on no ptdump line/);
    expect(check(['garbage'])).toMatch(/not "<start>-<end>/);
  });
});

describe('host stage-2 leaf attributes', () => {
  const c = DEFAULT_CONFIG;
  test('memory is normal RWX inner shareable, MMIO device RW execute-never', () => {
    expect(hostLeafAttrProblem(c, 0x40000, 3, MEM | 3, 0)).toBeNull();
    expect(hostLeafAttrProblem(c, 0, 1, MMIO | 1, XN)).toBeNull();
    expect(hostLeafAttrProblem(c, 0x40000, 3, MEM | 3, XN)).toMatch(/maps memory/);
    expect(hostLeafAttrProblem(c, 0x40000, 3, MMIO | 3, XN)).toMatch(/maps memory/);
    expect(hostLeafAttrProblem(c, 0x1000, 3, MEM | 3, XN)).toMatch(/maps MMIO/);
    expect(hostLeafAttrProblem(c, 0x1000, 3, MMIO | 3, 0)).toMatch(/maps MMIO/);
    expect(hostLeafAttrProblem(c, 0x40000, 3, (MEM & ~pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W) | 3, 0)).toMatch(/maps memory/);
  });

  test('a block over memory and MMIO is wrong whatever its attributes', () => {
    expect(hostLeafAttrProblem(c, 0x40000, 1, MEM | 1, 0)).toMatch(/spans memory and MMIO/);
    expect(hostLeafAttrProblem(c, 0x41000, 2, MMIO | 1, XN)).toBeNull();
  });
});
