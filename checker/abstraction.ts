// The abstraction function: reads hyp's tables and metadata back into the model's vocabulary, so
// that the two can be compared page by page (footprint) or as a whole.
import type { Page } from '../model/state';
import { formatProt, hex } from './vocabulary';
import type { Pkvm } from '../hyp/pkvm';
import { KVM_PGTABLE_PROT_SW1, KVM_PTE_LEAF_ATTR_HI_XN, KVM_PTE_LEAF_ATTR_LO_AF, KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R, KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W, kvm_granule_pages, kvm_pte_to_pfn, kvm_pte_valid } from '../hyp/pgtable';
import { HYP_PAGE_FFA_SHARED, HYP_PAGE_INTERNAL } from '../hyp/vmemmap';
import { annotationOwner, isValid, isZero, translate } from './walk';

/** A page as hyp's state describes it; `owner` may name an unexpected annotation ("id 7"). */
export type AbstractPage = Omit<Page, 'owner'> & { readonly owner: string };

export function abstractPage(hyp: Pkvm, pfn: number, host = translate(hyp.mem, hyp.host_mmu, pfn), hypLeaf = translate(hyp.mem, hyp.hyp_pgt, pfn)): AbstractPage {
  const owner = isValid(host) || isZero(host) ? 'host' : annotationOwner(host) === 1 ? 'hyp' : `id ${annotationOwner(host)}`;
  const borrowed = isValid(hypLeaf) && (hypLeaf.hi & KVM_PGTABLE_PROT_SW1) !== 0;
  const flags = hyp.vmemmap.flags(pfn);
  let use: AbstractPage['use'] = 'free';
  if (owner === 'hyp' && flags & HYP_PAGE_INTERNAL) {
    const [first, nr] = hyp.layout.carveout;
    const vm = pfn >= first && pfn < first + nr ? -1 : hyp.vm_of_page(pfn);
    use = vm >= 0 ? vm : 'hyp';
  }
  return {
    owner,
    use,
    hyp: borrowed,
    ffa: (flags & HYP_PAGE_FFA_SHARED) !== 0,
    guests: hyp.vmemmap.share_guest_count(pfn),
    pins: owner === 'host' ? hyp.vmemmap.refcount(pfn) : 0,
  };
}

export const pageKey = (p: AbstractPage | Page): string => `${p.owner}/${p.use}/${p.hyp ? 'hyp' : '-'}/${p.ffa ? 'ffa' : '-'}/g${p.guests}/pin${p.pins}`;

/** A guest leaf's mapping of one gfn as the model writes it: "pfn 0x.. nr N PROT" (the page at `offset` in the leaf). */
export function describeGuestLeaf(lo: number, hi: number, level: number, offset: number): string {
  const prot = formatProt({ r: (lo & KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R) !== 0, w: (lo & KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W) !== 0, x: (hi & KVM_PTE_LEAF_ATTR_HI_XN) === 0 });
  const young = (lo & KVM_PTE_LEAF_ATTR_LO_AF) !== 0;
  return `${describeGuestMapping(kvm_pte_to_pfn(lo, hi) + offset, kvm_granule_pages(level), prot, young)}${kvm_pte_valid(lo) ? '' : ' INVALID'}`;
}

/** The same text from the model's side; `old` marks a leaf whose access flag is clear. */
export const describeGuestMapping = (pfn: number, nr: number, prot: string, young: boolean): string => `pfn ${hex(pfn)} nr ${nr} ${prot || 'no access'}${young ? '' : ' old'}`;
