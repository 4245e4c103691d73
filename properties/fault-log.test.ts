// The host fault log (SEMANTICS §6): random sequences rarely fault on more than 128 distinct pages,
// so this property drives the log past its capacity on purpose: donate a run of pages to hyp, then
// touch a random selection of them (with repeats), and check model, hyp and the log's own rules.
import { test } from 'vitest';
import fc from 'fast-check';
import { Lockstep } from '../checker/lockstep';
import { runSteps } from '../checker/sequence';
import type { TraceStep } from '../checker/vocabulary';
import { DEFAULT_CONFIG, FAULT_LOG_SIZE } from '../types/config';
import { SEED } from './seed';

const BASE = 0x40100;

test('the fault log stays bounded, deduplicated, warns once, and counts every abort', () => {
  const ls = new Lockstep(DEFAULT_CONFIG);
  let overflowed = 0;
  fc.assert(
    fc.property(fc.integer({ min: 100, max: 300 }), fc.array(fc.nat({ max: 299 }), { minLength: 150, maxLength: 400 }), fc.boolean(), (donated, touches, newVm) => {
      const steps: TraceStep[] = [{ call: '__pkvm_host_donate_hyp', args: { pfn: BASE, nr_pages: donated }, expect: 0 }];
      for (const t of touches) steps.push({ call: 'host_access', args: { pfn: BASE + t, write: t % 2 === 0 }, expect: t < donated ? -1 : 0 });
      if (newVm) steps.push({ call: '__pkvm_init_vm', args: { pfn: 0x40800, nr_pages: 3 } }, { call: 'host_access', args: { pfn: BASE, write: false }, expect: -1 });
      const out = runSteps(ls, steps);
      if (ls.hyp.faults.view().dropped > 0 || (newVm && new Set(touches.filter((t) => t < donated)).size > FAULT_LOG_SIZE)) overflowed++;
      return out.failure === null;
    }),
    { seed: SEED, numRuns: 40 },
  );
  if (overflowed === 0) throw new Error('the generator never filled the fault log');
});
