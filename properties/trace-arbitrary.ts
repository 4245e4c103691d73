// A small generator of well-formed trace files, for testing the trace format itself (not the calls'
// semantics: values are arbitrary but type-correct, and every "$N" names an earlier __pkvm_init_vm).
import { fc } from '@fast-check/vitest';
import type { Prot, StackCorruption } from '../types/calls';
import { PA_PFNS, type MachineConfig, type MemoryRegion } from '../types/config';
import { ERRNO_NAMES } from '../types/errno';
import { CATALOG } from '../checker/bugs/catalog';
import type { TraceFile } from '../checker/trace/file';
import type { TraceStep, VmRef } from '../checker/vocabulary';

const u64 = fc.oneof(fc.nat(0x50000), fc.maxSafeNat());
const range = fc.record({ pfn: u64, nr_pages: u64 });
/** A VM handle, or a draft reference whose number is resolved by `linkRefs`. */
const vm: fc.Arbitrary<number | VmRef> = fc.oneof(fc.nat(0x2000), fc.nat(50).map((n) => ({ ref: n + 1 })));
/** The VM of a call on the loaded vCPU: also none (the loaded vCPU's). */
const loadedVm: fc.Arbitrary<number | VmRef | null> = fc.option(vm, { nil: null });
const prot: fc.Arbitrary<Prot> = fc.record({ r: fc.boolean(), w: fc.boolean(), x: fc.boolean() });
const hex64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((b) => `0x${b.toString(16)}`);
const corruption: fc.Arbitrary<StackCorruption> = fc.record({ stack: fc.constantFrom('hyp', 'overflow'), offset: u64, value: hex64 });

const errnos = Object.keys(ERRNO_NAMES).map((n) => -Number(n));
/**
 * 0, a known errno (written as its name), an unnamed negative number (written as a number), or a
 * positive result (test_clear_young's 1; written in hex).
 */
const expect = fc.option(fc.oneof(fc.constantFrom(0, 1, ...errnos), fc.integer({ min: -200, max: 0 })), { nil: undefined });

const callAndArgs: fc.Arbitrary<Omit<TraceStep, 'expect'>> = fc.oneof(
  fc.record({ call: fc.constant('__pkvm_host_share_hyp' as const), args: fc.record({ pfn: u64 }) }),
  fc.record({ call: fc.constant('__pkvm_host_unshare_hyp' as const), args: fc.record({ pfn: u64 }) }),
  fc.record({ call: fc.constant('__pkvm_host_donate_hyp' as const), args: range }),
  fc.record({ call: fc.constant('__pkvm_hyp_donate_host' as const), args: range }),
  fc.record({ call: fc.constant('__pkvm_host_share_ffa' as const), args: range }),
  fc.record({ call: fc.constant('__pkvm_host_unshare_ffa' as const), args: range }),
  fc.record({ call: fc.constant('hyp_pin_shared_mem' as const), args: range }),
  fc.record({ call: fc.constant('hyp_unpin_shared_mem' as const), args: range }),
  fc.record({ call: fc.constant('__pkvm_init_vm' as const), args: range }),
  fc.record({ call: fc.constant('__pkvm_init_vm' as const), args: range }),
  fc.record({
    call: fc.constant('__pkvm_host_share_guest' as const),
    args: fc.record({ pfn: u64, gfn: u64, nr_pages: u64, vm: loadedVm, prot }),
  }),
  fc.record({ call: fc.constant('__pkvm_host_unshare_guest' as const), args: fc.record({ gfn: u64, nr_pages: u64, vm }) }),
  fc.record({ call: fc.constant('__pkvm_host_relax_perms_guest' as const), args: fc.record({ gfn: u64, prot, vm: loadedVm }) }),
  fc.record({ call: fc.constant('__pkvm_host_wrprotect_guest' as const), args: fc.record({ gfn: u64, nr_pages: u64, vm }) }),
  fc.record({ call: fc.constant('__pkvm_host_test_clear_young_guest' as const), args: fc.record({ gfn: u64, nr_pages: u64, mkold: fc.boolean(), vm }) }),
  fc.record({ call: fc.constant('__pkvm_host_mkyoung_guest' as const), args: fc.record({ gfn: u64, vm: loadedVm }) }),
  fc.record({ call: fc.constant('__pkvm_vcpu_load' as const), args: fc.record({ vm, vcpu: u64 }) }),
  fc.record({ call: fc.constant('__pkvm_vcpu_put' as const), args: fc.constant({}) }),
  fc.record({ call: fc.constant('__pkvm_teardown_vm' as const), args: fc.record({ vm }) }),
  fc.record({ call: fc.constant('host_access' as const), args: fc.record({ pfn: u64, write: fc.boolean() }) }),
  fc.record({
    call: fc.constant('__pkvm_host_stage2_snapshot' as const),
    args: fc.record({
      desc: u64,
      pgd: u64,
      pgd_pages: u64,
      mc: fc.array(u64, { maxLength: 4 }),
      mc_nr_pages: u64,
      mc_tail: u64,
      used: u64,
      num_used_pages: u64,
      used_pages_indx: u64,
    }),
  }),
  fc.record({
    call: fc.constant('hyp_panic' as const),
    args: fc.record({
      scenario: fc.constantFrom('recursive_death', 'call_chain'),
      mode: fc.constantFrom('protected' as const, 'nonprotected' as const),
      page_size: fc.constantFrom(4096, 16384, 65536),
      depth: u64,
      seed: u64,
      corrupt: fc.array(corruption, { maxLength: 3 }),
    }),
  }),
);

// `__pkvm_init_vm` returns a handle on success, so a trace never expects 0 of it.
const step: fc.Arbitrary<TraceStep> = fc
  .tuple(callAndArgs, expect)
  .map(([s, e]) => (e === undefined || (e === 0 && s.call === '__pkvm_init_vm') ? s : { ...s, expect: e }) as TraceStep);

/** Points each draft `$N` at an earlier __pkvm_init_vm step, or turns it into a plain handle if none. */
function linkRefs(steps: readonly TraceStep[]): TraceStep[] {
  return steps.map((s, i) => {
    const v = (s.args as { vm?: number | VmRef | null }).vm;
    if (v === undefined || v === null || typeof v === 'number') return s;
    const inits = steps.slice(0, i).flatMap((p, j) => (p.call === '__pkvm_init_vm' ? [j + 1] : []));
    const linked = inits.length === 0 ? v.ref : { ref: inits[(v.ref - 1) % inits.length] };
    return { ...s, args: { ...s.args, vm: linked } } as TraceStep;
  });
}

export const traceSteps: fc.Arbitrary<TraceStep[]> = fc.array(step, { maxLength: 12 }).map(linkRefs);

/**
 * Sorted, non-overlapping regions well inside the 40-bit PA space; the first has room for hyp's
 * carve-out (at most about 1,400 pages for four regions), so hyp can boot on every one.
 */
const config: fc.Arbitrary<MachineConfig> = fc
  .array(fc.tuple(fc.nat(1 << 20), fc.integer({ min: 1, max: 1 << 16 })), { minLength: 1, maxLength: 4 })
  .map((pairs) => {
    let next = 0;
    const memory: MemoryRegion[] = pairs.map(([gap, size], i) => {
      const pages = i === 0 ? Math.max(size, 4096) : size;
      const region: MemoryRegion = [next + gap, pages];
      next += gap + pages;
      return region;
    });
    if (next > PA_PFNS) throw new Error('generator bug: region outside the PA space');
    return { memory, pageSize: 4096 };
  });

export const traceFiles: fc.Arbitrary<TraceFile> = fc
  .record({
    config,
    inject: fc.option(fc.constantFrom(...CATALOG.map((b) => b.id)), { nil: null }),
    seed: fc.option(fc.maxSafeNat(), { nil: null }),
    steps: traceSteps,
    failure: fc.option(fc.record({ property: fc.string({ unit: 'binary' }), step: fc.nat(), message: fc.string({ unit: 'binary' }) }), {
      nil: null,
    }),
  })
  .map(({ failure, ...t }) => ({
    format: 'pkvm-check/trace@1' as const,
    ...t,
    failure: failure && { ...failure, step: failure.step % (t.steps.length + 1) },
  }));
