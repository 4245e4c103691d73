// Conformance: one page driven into every state the calls can reach, and from each state every call
// on that page, with the result docs/semantics.md §5-§6 gives written out by hand, for each kernel
// version. The lockstep runner checks model against hyp (results and state) at every step; this table
// checks both against the kernel's answers.
import { describe, expect, test } from 'vitest';
import { Lockstep } from '../checker/lockstep';
import { runSteps } from '../checker/sequence';
import type { TraceStep } from '../checker/vocabulary';
import { DEFAULT_CONFIG, PA_PFNS, type MachineConfig } from '../types/config';
import { E2BIG, EBUSY, EINVAL, ENOENT, ENOMEM, EPERM, ERANGE } from '../types/errno';
import { HYP_PANIC, KERNEL_VERSIONS, NOT_SUPPORTED, type KernelVersion } from '../types/kernel';

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
  relax: { call: '__pkvm_host_relax_perms_guest', args: { gfn: G1, prot: { r: false, w: false, x: true }, vm: VM } },
  wrprotect: { call: '__pkvm_host_wrprotect_guest', args: { gfn: G1, nr_pages: 1, vm: VM } },
  young: { call: '__pkvm_host_test_clear_young_guest', args: { gfn: G1, nr_pages: 1, mkold: true, vm: VM } },
  mkyoung: { call: '__pkvm_host_mkyoung_guest', args: { gfn: G1, vm: VM } },
  // 6.16's teardown leaves a guest share behind: the page stays SHARED_OWNED (docs/semantics.md §7).
  teardown_then_share_hyp: { call: '__pkvm_host_share_hyp', args: { pfn: P } },
};

/** Steps a call needs before it (the teardown column tears the VM down first). */
const BEFORE: Record<string, TraceStep[]> = { teardown_then_share_hyp: [{ call: '__pkvm_teardown_vm', args: { vm: VM }, expect: 0 }] };

const ok = 0;
const perm = -EPERM;
const inval = -EINVAL;
const noent = -ENOENT;
const panic = HYP_PANIC;
const config = (kernel: KernelVersion): MachineConfig => ({ ...DEFAULT_CONFIG, kernel });

// The same in both versions, but for the guest calls, which 6.12 does not have (NOT_SUPPORTED).
// prettier-ignore
const TABLE: Record<string, Record<string, number>> = {
  //                          share_hyp unshare_hyp donate hyp_donate share_ffa unshare_ffa pin    unpin  share_guest unshare_guest access relax wrprotect young mkyoung teardown_then_share_hyp
  'host OWNED':              row(ok,    perm,       ok,    perm,      ok,       perm,       perm,  panic, ok,         noent,        ok,    ok,   ok,       ok,   ok,     ok),
  'shared with hyp':         row(perm,  ok,         perm,  perm,      perm,     perm,       ok,    panic, perm,       noent,        ok,    ok,   ok,       ok,   ok,     perm),
  'shared with hyp, pinned': row(perm,  -EBUSY,     perm,  perm,      perm,     perm,       ok,    ok,    perm,       noent,        ok,    ok,   ok,       ok,   ok,     perm),
  'donated to hyp':          row(perm,  perm,       perm,  ok,        perm,     perm,       perm,  panic, perm,       noent,        perm,  ok,   ok,       ok,   ok,     perm),
  'shared with ffa':         row(perm,  perm,       perm,  perm,      perm,     ok,         perm,  panic, perm,       noent,        ok,    ok,   ok,       ok,   ok,     perm),
  'shared with a guest':     row(perm,  perm,       perm,  perm,      perm,     perm,       perm,  panic, ok,         ok,           ok,    ok,   ok,       1,    ok,     perm),
  'a VM page (hyp uses it)': row(perm,  perm,       perm,  perm,      perm,     perm,       perm,  panic, perm,       noent,        perm,  ok,   ok,       ok,   ok,     perm),
};

function row(...results: number[]): Record<string, number> {
  return Object.fromEntries(Object.keys(CALLS).map((c, i) => [c, results[i]]));
}

const GUEST_CALLS = ['share_guest', 'unshare_guest', 'relax', 'wrprotect', 'young', 'mkyoung'];
/**
 * What `version` answers: 6.12 has no guest calls, so neither the state they build nor their results;
 * with no guest shares, its teardown leaves the page as it was (the 6.16 row's "shared with a guest" aside).
 */
function want(version: KernelVersion, state: string, name: string): number {
  if (version === '6.12' && GUEST_CALLS.includes(name)) return NOT_SUPPORTED;
  if (version === '6.12' && name === 'teardown_then_share_hyp') return TABLE[state].share_hyp;
  return TABLE[state][name];
}
const statesOf = (version: KernelVersion) => Object.keys(STATES).filter((s) => version === '6.16' || s !== 'shared with a guest');

describe.each(KERNEL_VERSIONS)('conformance %s: every call from every state of one page', (version) => {
  const ls = new Lockstep(config(version));
  for (const state of statesOf(version))
    test.each(Object.keys(CALLS))(`${state}: %s`, (name) => {
      const steps = [...setup, ...STATES[state], ...(BEFORE[name] ?? []), { ...CALLS[name], expect: want(version, state, name) } as TraceStep];
      const out = runSteps(ls, steps);
      expect(out.failure).toBeNull();
      expect(ls.results[steps.length - 1]).toBe(want(version, state, name));
    });
});

describe.each(KERNEL_VERSIONS)('conformance %s: range arguments (docs/semantics.md §4)', (version) => {
  const ls = new Lockstep(config(version));
  const [first, nr] = DEFAULT_CONFIG.memory[0];
  const v = (v612: number, v616: number) => (version === '6.12' ? v612 : v616);
  const cases: [string, TraceStep[], number][] = [
    ['a range wholly in MMIO', [{ call: '__pkvm_host_donate_hyp', args: { pfn: 0x1000, nr_pages: 2 } }], perm],
    ['a range straddling the end of memory', [{ call: '__pkvm_host_share_ffa', args: { pfn: first + nr - 1, nr_pages: 2 } }], v(perm, inval)],
    ['a range straddling the start of memory', [{ call: '__pkvm_host_share_ffa', args: { pfn: first - 1, nr_pages: 2 } }], v(perm, inval)],
    ['a range running past the PA space', [{ call: '__pkvm_host_donate_hyp', args: { pfn: PA_PFNS - 1, nr_pages: 2 } }], v(-ERANGE, perm)],
    ['a range wholly past the PA space', [{ call: '__pkvm_host_share_ffa', args: { pfn: PA_PFNS + 5, nr_pages: 1 } }], v(-ERANGE, perm)],
    ['a range from memory past the PA space', [{ call: '__pkvm_host_share_ffa', args: { pfn: first, nr_pages: PA_PFNS } }], v(-ERANGE, inval)],
    ['a pfn that aliases memory (u64 addresses)', [{ call: '__pkvm_host_share_ffa', args: { pfn: 2 ** 52 + P, nr_pages: 1 } }, { call: '__pkvm_host_share_ffa', args: { pfn: P, nr_pages: 1 } }], perm],
    ['a wrapping range', [{ call: '__pkvm_host_share_ffa', args: { pfn: P, nr_pages: 2 ** 52 - P + 1 } }], v(ok, inval)],
    ['nr_pages = 0 inside memory', [{ call: '__pkvm_host_donate_hyp', args: { pfn: P, nr_pages: 0 } }], ok],
    ['nr_pages = 0 at the first page of memory', [{ call: '__pkvm_host_donate_hyp', args: { pfn: first, nr_pages: 0 } }], v(ok, inval)],
    ['nr_pages = 0 in MMIO', [{ call: '__pkvm_host_share_ffa', args: { pfn: 0x1000, nr_pages: 0 } }], v(ok, perm)],
    ['nr_pages = 0 past the PA space', [{ call: '__pkvm_host_share_ffa', args: { pfn: PA_PFNS + 1, nr_pages: 0 } }], v(-ERANGE, perm)],
    ['hyp_donate_host checks hyp first', [{ call: '__pkvm_hyp_donate_host', args: { pfn: first - 1, nr_pages: 2 } }], perm],
    ['unpin of nothing', [{ call: 'hyp_unpin_shared_mem', args: { pfn: P, nr_pages: 0 } }], ok],
    ['unpin in MMIO panics', [{ call: 'hyp_unpin_shared_mem', args: { pfn: 0x1000, nr_pages: 1 } }], panic],
    ['MMIO is always reachable by the host', [{ call: 'host_access', args: { pfn: 0x1000, write: true } }], ok],
    ['an access beyond the IPA space', [{ call: 'host_access', args: { pfn: 2 ** 28, write: false } }], -ERANGE],
    ['init_vm with too few pages', [{ call: '__pkvm_init_vm', args: { pfn: P, nr_pages: 2 } }], inval],
    ['teardown of an unknown VM', [{ call: '__pkvm_teardown_vm', args: { vm: 0x1000 } }], noent],
    ['share_guest to an unknown VM', [{ call: '__pkvm_host_share_guest', args: { pfn: P, gfn: 0, nr_pages: 1, vm: 0x1234, prot: RW } }], v(NOT_SUPPORTED, inval)],
    ['share_guest of 512 unaligned pages', [...setup, { call: '__pkvm_host_share_guest', args: { pfn: P, gfn: 0, nr_pages: 512, vm: VM, prot: RW } }], v(NOT_SUPPORTED, inval)],
    [
      'unshare_guest of one page of a 2 MiB share',
      [...setup, { call: '__pkvm_host_share_guest', args: { pfn: first + 1024, gfn: 512, nr_pages: 512, vm: VM, prot: RW } }, { call: '__pkvm_host_unshare_guest', args: { gfn: 515, nr_pages: 1, vm: VM } }],
      v(NOT_SUPPORTED, -E2BIG),
    ],
    [
      'a 2 MiB guest share and unshare',
      [...setup, { call: '__pkvm_host_share_guest', args: { pfn: first + 1024, gfn: 512, nr_pages: 512, vm: VM, prot: RW } }, { call: '__pkvm_host_unshare_guest', args: { gfn: 512, nr_pages: 512, vm: VM } }],
      v(NOT_SUPPORTED, ok),
    ],
    ['share_guest past the IPA space: -ERANGE from the guest walk, after the host range', [...setup, { call: '__pkvm_host_share_guest', args: { pfn: P, gfn: 2 ** 28, nr_pages: 1, vm: VM, prot: RW } }], v(NOT_SUPPORTED, -ERANGE)],
    ['share_guest past the IPA space of an MMIO page: the host range first', [...setup, { call: '__pkvm_host_share_guest', args: { pfn: 0x1000, gfn: 2 ** 28, nr_pages: 1, vm: VM, prot: RW } }], v(NOT_SUPPORTED, perm)],
    ['unshare_guest past the IPA space', [...setup, { call: '__pkvm_host_unshare_guest', args: { gfn: 2 ** 28, nr_pages: 1, vm: VM } }], v(NOT_SUPPORTED, -ERANGE)],
    ['relax_perms inside a 2 MiB guest block: the debug assertion panics', [...setup, { call: '__pkvm_host_share_guest', args: { pfn: first + 1024, gfn: 512, nr_pages: 512, vm: VM, prot: RW } }, { call: '__pkvm_host_relax_perms_guest', args: { gfn: 513, prot: RW, vm: VM } }], v(NOT_SUPPORTED, panic)],
    ['teardown under a loaded vCPU panics', [...setup, { call: '__pkvm_vcpu_load', args: { vm: VM, vcpu: 0 } }, { call: '__pkvm_teardown_vm', args: { vm: VM } }], v(ok, panic)],
    ['init_vm over a page the host does not own: -ENOMEM', [{ call: '__pkvm_host_share_hyp', args: { pfn: P } }, { call: '__pkvm_init_vm', args: { pfn: P, nr_pages: 3 } }], -ENOMEM],
    ['a handle is a 32-bit register (pkvm_handle_t): 2^32 + 0x1000 names the VM 0x1000', [...setup, { call: '__pkvm_teardown_vm', args: { vm: 2 ** 32 + 0x1000 } }], ok],
    ['the vCPU index is an unsigned int: 2^32 + 1 loads vCPU 1', [...setup, { call: '__pkvm_vcpu_load', args: { vm: VM, vcpu: 2 ** 32 + 1 } }, { call: '__pkvm_teardown_vm', args: { vm: VM } }], v(ok, panic)],
    ["hyp's carve-out is not the host's", [{ call: 'host_access', args: { pfn: first + nr - 1, write: false } }], perm],
    ["hyp never gives away its carve-out", [{ call: '__pkvm_hyp_donate_host', args: { pfn: first + nr - 1, nr_pages: 1 } }], perm],
  ];
  test.each(cases)('%s', (_, steps, want) => {
    const out = runSteps(ls, steps);
    expect(out.failure).toBeNull();
    expect(ls.results[steps.length - 1]).toBe(want);
  });
});

describe.each(KERNEL_VERSIONS)('conformance %s: the pin count is a u16 (memory.h:54)', (version) => {
  test('the 65,536th pin panics and changes nothing; the sequence goes on', () => {
    const ls = new Lockstep(config(version));
    const pin: TraceStep = { call: 'hyp_pin_shared_mem', args: { pfn: P, nr_pages: 1 } };
    const unpin: TraceStep = { call: 'hyp_unpin_shared_mem', args: { pfn: P, nr_pages: 1 } };
    const steps: TraceStep[] = [CALLS.share_hyp, ...Array<TraceStep>(0xffff).fill(pin), { ...pin, expect: panic }, { ...unpin, expect: ok }, { ...pin, expect: ok }];
    expect(runSteps(ls, steps).failure).toBeNull();
    expect(ls.model.pages.get(P)?.pins).toBe(0xffff);
  });
});
