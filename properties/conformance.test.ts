// Conformance: one page driven into every state the calls can reach, and from each state every call
// on that page, with the result SEMANTICS §3/§4 gives written out by hand. The lockstep runner checks
// model against hyp (results and state) at every step; this table checks both against the spec.
import { describe, expect, test } from 'vitest';
import { Lockstep } from '../checker/lockstep';
import { runSteps } from '../checker/sequence';
import type { TraceStep } from '../checker/vocabulary';
import { DEFAULT_CONFIG } from '../types/config';
import { E2BIG, EBUSY, EINVAL, ENOENT, EPERM, ERANGE } from '../types/errno';

const P = 0x40010; // the page under test
const G1 = 7; // gfn P is shared at, in the guest-shared state
const G2 = 9; // a fresh gfn
const VM = { ref: 1 };
const RW = { r: true, w: true, x: false };

/** Step 1 of every setup creates the VM the guest calls use (its pages are far from P). */
const setup: TraceStep[] = [{ call: '__pkvm_init_vm', args: { pfn: 0x40800, nr_pages: 4 } }];

const STATES: Record<string, TraceStep[]> = {
  'host OWNED': [],
  'shared with hyp': [{ call: '__pkvm_host_share_hyp', args: { pfn: P } }],
  'shared with hyp, pinned': [
    { call: '__pkvm_host_share_hyp', args: { pfn: P } },
    { call: 'hyp_pin_shared_mem', args: { pfn: P, nr_pages: 1 } },
  ],
  'donated to hyp': [{ call: '__pkvm_host_donate_hyp', args: { pfn: P, nr_pages: 1 } }],
  'shared with ffa': [{ call: '__pkvm_host_share_ffa', args: { pfn: P, nr_pages: 1 } }],
  'shared with a guest': [{ call: '__pkvm_host_share_guest', args: { pfn: P, gfn: G1, nr_pages: 1, vm: VM, prot: RW } }],
  'a VM page (hyp uses it)': [{ call: '__pkvm_init_vm', args: { pfn: P, nr_pages: 3 } }],
};

const CALLS: Record<string, TraceStep> = {
  share_hyp: { call: '__pkvm_host_share_hyp', args: { pfn: P } },
  unshare_hyp: { call: '__pkvm_host_unshare_hyp', args: { pfn: P } },
  donate_hyp: { call: '__pkvm_host_donate_hyp', args: { pfn: P, nr_pages: 1 } },
  hyp_donate_host: { call: '__pkvm_hyp_donate_host', args: { pfn: P, nr_pages: 1 } },
  share_ffa: { call: '__pkvm_host_share_ffa', args: { pfn: P, nr_pages: 1 } },
  unshare_ffa: { call: '__pkvm_host_unshare_ffa', args: { pfn: P, nr_pages: 1 } },
  pin: { call: 'hyp_pin_shared_mem', args: { pfn: P, nr_pages: 1 } },
  unpin: { call: 'hyp_unpin_shared_mem', args: { pfn: P, nr_pages: 1 } },
  share_guest: { call: '__pkvm_host_share_guest', args: { pfn: P, gfn: G2, nr_pages: 1, vm: VM, prot: RW } },
  unshare_guest: { call: '__pkvm_host_unshare_guest', args: { gfn: G1, nr_pages: 1, vm: VM } },
  access: { call: 'host_access', args: { pfn: P, write: true } },
};

const ok = 0;
const perm = -EPERM;
const inval = -EINVAL;
const noent = -ENOENT;

// prettier-ignore
const TABLE: Record<string, Record<string, number>> = {
  //                          share_hyp unshare_hyp donate hyp_donate share_ffa unshare_ffa pin    unpin  share_guest unshare_guest access
  'host OWNED':              row(ok,    perm,       ok,    perm,      ok,       perm,       perm,  inval, ok,         noent,        ok),
  'shared with hyp':         row(perm,  ok,         perm,  perm,      perm,     perm,       ok,    inval, perm,       noent,        ok),
  'shared with hyp, pinned': row(perm,  -EBUSY,     perm,  perm,      perm,     perm,       ok,    ok,    perm,       noent,        ok),
  'donated to hyp':          row(perm,  perm,       perm,  ok,        perm,     perm,       perm,  inval, perm,       noent,        perm),
  'shared with ffa':         row(perm,  perm,       perm,  perm,      perm,     ok,         perm,  inval, perm,       noent,        ok),
  'shared with a guest':     row(perm,  perm,       perm,  perm,      perm,     perm,       perm,  inval, ok,         ok,           ok),
  'a VM page (hyp uses it)': row(perm,  perm,       perm,  perm,      perm,     perm,       perm,  inval, perm,       noent,        perm),
};

function row(...results: number[]): Record<string, number> {
  return Object.fromEntries(Object.keys(CALLS).map((c, i) => [c, results[i]]));
}

describe('conformance: every call from every state of one page', () => {
  const ls = new Lockstep(DEFAULT_CONFIG);
  for (const [state, path] of Object.entries(STATES))
    test.each(Object.keys(CALLS))(`${state}: %s`, (name) => {
      const steps = [...setup, ...path, { ...CALLS[name], expect: TABLE[state][name] } as TraceStep];
      const out = runSteps(ls, steps);
      expect(out.failure).toBeNull();
      expect(ls.results[steps.length - 1]).toBe(TABLE[state][name]);
    });
});

describe('conformance: range arguments (rule 1) and the rest of the errno table', () => {
  const ls = new Lockstep(DEFAULT_CONFIG);
  const [first, nr] = DEFAULT_CONFIG.memory[0];
  const cases: [string, TraceStep[], number][] = [
    ['a range wholly in MMIO', [{ call: '__pkvm_host_donate_hyp', args: { pfn: 0x1000, nr_pages: 2 } }], perm],
    ['a range straddling the end of memory', [{ call: '__pkvm_host_share_ffa', args: { pfn: first + nr - 1, nr_pages: 2 } }], inval],
    ['a range straddling the start of memory', [{ call: '__pkvm_host_share_ffa', args: { pfn: first - 1, nr_pages: 2 } }], inval],
    ['a range past the physical address space', [{ call: '__pkvm_host_donate_hyp', args: { pfn: 2 ** 28 - 1, nr_pages: 2 } }], inval],
    ['nr_pages = 0 is a no-op', [{ call: '__pkvm_host_donate_hyp', args: { pfn: P, nr_pages: 0 } }], ok],
    ['MMIO is always reachable by the host', [{ call: 'host_access', args: { pfn: 0x1000, write: true } }], ok],
    ['an access beyond the IPA space', [{ call: 'host_access', args: { pfn: 2 ** 28, write: false } }], -ERANGE],
    ['init_vm with too few pages', [{ call: '__pkvm_init_vm', args: { pfn: P, nr_pages: 2 } }], inval],
    ['teardown of an unknown VM', [{ call: '__pkvm_teardown_vm', args: { vm: 0x1000 } }], noent],
    ['share_guest to an unknown VM', [{ call: '__pkvm_host_share_guest', args: { pfn: P, gfn: 0, nr_pages: 1, vm: 0x1234, prot: RW } }], inval],
    ['share_guest of 512 unaligned pages', [...setup, { call: '__pkvm_host_share_guest', args: { pfn: P, gfn: 0, nr_pages: 512, vm: VM, prot: RW } }], inval],
    [
      'unshare_guest of one page of a 2 MiB share',
      [...setup, { call: '__pkvm_host_share_guest', args: { pfn: first + 1024, gfn: 512, nr_pages: 512, vm: VM, prot: RW } }, { call: '__pkvm_host_unshare_guest', args: { gfn: 515, nr_pages: 1, vm: VM } }],
      -E2BIG,
    ],
    [
      'a 2 MiB guest share and unshare',
      [...setup, { call: '__pkvm_host_share_guest', args: { pfn: first + 1024, gfn: 512, nr_pages: 512, vm: VM, prot: RW } }, { call: '__pkvm_host_unshare_guest', args: { gfn: 512, nr_pages: 512, vm: VM } }],
      ok,
    ],
    ["hyp's carve-out is not the host's", [{ call: 'host_access', args: { pfn: first + nr - 1, write: false } }], perm],
    ["hyp never gives away its carve-out", [{ call: '__pkvm_hyp_donate_host', args: { pfn: first + nr - 1, nr_pages: 1 } }], perm],
  ];
  test.each(cases)('%s', (_, steps, want) => {
    const out = runSteps(ls, steps);
    expect(out.failure).toBeNull();
    expect(ls.results[steps.length - 1]).toBe(want);
  });
});
