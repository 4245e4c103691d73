// Where the model differs from 6.12 on purpose (docs/semantics.md §10, docs/kernel.md): the
// kernel target does not send such a call, and still compares the probes of its pages.
import type { Call, CallName } from '../../types/calls';
import { PA_PFNS } from '../../types/config';
import { isMemory } from '../../model/range';
import { hostState, page, type Page, type State } from '../../model/state';

/** Longest range whose pages a deviation looks at one by one. */
const MAX_RANGE = 1024;

/** Every page of the call's range is memory and passes `ok` (false for an empty or huge range). */
function everyPage(model: State, call: Call, ok: (p: Page) => boolean): boolean {
  const a = call.args as { pfn: number; nr_pages: number };
  if (a.nr_pages === 0 || a.nr_pages > MAX_RANGE) return false;
  for (let p = a.pfn; p < a.pfn + a.nr_pages; p++) if (!isMemory(model.config, p) || !ok(page(model, p))) return false;
  return true;
}

export interface Deviation {
  /** The calls it applies to (null: every call). */
  readonly call: CallName | null;
  /** Whether this call, which the model answered `want` (its state after it), is one the kernel answers differently. */
  readonly when: (model: State, call: Call, want: number) => boolean;
  readonly why: string;
}

export const DEVIATIONS: readonly Deviation[] = [
  {
    call: null,
    // The model refused the range for its end past 2^40 (a range that wraps modulo 2^52 is sent).
    when: (_model, call, want) => {
      const a = call.args as Partial<{ pfn: number; nr_pages: number }>;
      return want < 0 && a.pfn !== undefined && a.pfn + Math.max(a.nr_pages ?? 1, 1) > PA_PFNS;
    },
    why: "a range reaching past the 40-bit physical address space: the answer depends on this machine's limits (QEMU's 48-bit IPA, the hyp VA layout, the relocation), which a trace written for the simulated machine does not describe",
  },
  {
    call: '__pkvm_hyp_donate_host',
    // The model refused to give back pages hyp uses itself; 6.12 checks only that hyp owns them.
    when: (model, call, want) => want < 0 && everyPage(model, call, (p) => p.owner === 'hyp'),
    why: 'the model refuses to give back pages hyp uses itself (its carve-out, a VM), which 6.12 hands back when hyp owns them (docs/semantics.md §10 item 27)',
  },
  {
    call: '__pkvm_host_unshare_ffa',
    // The model refused the range; 6.12 would accept it when every page is SHARED_OWNED by the host.
    when: (model, call, want) => want < 0 && everyPage(model, call, (p) => hostState(p) === 'SHARED_OWNED'),
    why: '6.12 checks only that the host shares the pages, so it would end a share with hyp or a guest and leave the borrower mapping a page the host owns again; the model requires the pages to be lent to ffa',
  },
];

/** The deviation that keeps this call from being sent, if any. */
export const deviationOf = (model: State, call: Call, want: number): Deviation | undefined =>
  DEVIATIONS.find((d) => (d.call === null || d.call === call.call) && d.when(model, call, want));
