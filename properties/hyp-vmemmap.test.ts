// hyp_vmemmap (hyp/vmemmap.ts): per-page refcounts, guest share counts and flags, one slot per
// memory page across regions.
import { describe, expect, test } from 'vitest';
import { PhysMem } from '../hyp/memory';
import { HYP_PAGE_FFA_SHARED, HYP_PAGE_INTERNAL, HypVmemmap } from '../hyp/vmemmap';
import { DEFAULT_CONFIG } from '../types/config';

describe('hyp_vmemmap', () => {
  test('one slot per memory page across regions; MMIO has none', () => {
    const m = new PhysMem();
    const v = new HypVmemmap(m, { ...DEFAULT_CONFIG, memory: [[0x40000, 4], [0x50000, 4]] });
    const pages = [0x40000, 0x40003, 0x50000, 0x50003];
    pages.forEach((p, i) => v.page_ref_add(p, i + 1));
    pages.forEach((p, i) => expect(v.refcount(p)).toBe(i + 1));
    v.share_guest_count_add(0x50003, 2);
    expect(v.share_guest_count(0x50003)).toBe(2);
    expect(v.share_guest_count(0x50002)).toBe(0);
    expect(v.refcount(0x50003)).toBe(4);
    for (const mmio of [0x3ffff, 0x40004, 0x4ffff, 0x50004]) {
      expect(v.refcount(mmio)).toBe(0);
      expect(v.flags(mmio)).toBe(0);
      expect(() => v.page_ref_add(mmio, 1)).toThrow();
    }
    v.set_flags(0x40003, HYP_PAGE_INTERNAL | HYP_PAGE_FFA_SHARED, 0);
    expect(v.flags(0x40003)).toBe(HYP_PAGE_INTERNAL | HYP_PAGE_FFA_SHARED);
    v.set_flags(0x40003, 0, HYP_PAGE_FFA_SHARED);
    expect(v.flags(0x40003)).toBe(HYP_PAGE_INTERNAL);
    v.set_flags(0x40003, HYP_PAGE_INTERNAL, 0);
    expect(v.flags(0x40003)).toBe(HYP_PAGE_INTERNAL);
    expect(v.refcount(0x40003)).toBe(2);
    expect(v.flags(0x40002)).toBe(0);
  });
});
