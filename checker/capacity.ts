// Steps that fill hyp's fixed capacities: the 255 VM slots and the 128-entry host fault log. A
// property prefixes a random sequence with one of them, filled to one short of full, exactly full or
// one past, so that the random steps after it run where "full" and "one past full" are decided.
import fc from 'fast-check';
import { hypLayout } from '../hyp/setup';
import { FAULT_LOG_SIZE, MAX_VMS, VM_MIN_PAGES, type MachineConfig } from '../types/config';
import type { AbstractStep } from './generators';
import type { TraceStep } from './vocabulary';

export type Capacity = 'vm-slots' | 'fault-log';

const fixed = (step: TraceStep): AbstractStep => ({ call: step.call, d: [], fixed: step });

/**
 * `count` steps that each take one unit of `capacity`: a VM created from pages of its own (VM_MIN_PAGES
 * host pages each, from the middle of the largest region, below hyp's carve-out), or a host read of a
 * carve-out page (refused and logged).
 */
export function fillSteps(config: MachineConfig, capacity: Capacity, count: number): AbstractStep[] {
  const { carveout } = hypLayout(config);
  if (capacity === 'fault-log') return Array.from({ length: count }, (_, i) => fixed({ call: 'host_access', args: { pfn: carveout[0] + (i % carveout[1]), write: false } }));
  const base = carveout[0] - (MAX_VMS + 1) * VM_MIN_PAGES;
  return Array.from({ length: count }, (_, i) => fixed({ call: '__pkvm_init_vm', args: { pfn: base + i * VM_MIN_PAGES, nr_pages: VM_MIN_PAGES } }));
}

export const CAPACITIES: Readonly<Record<Capacity, number>> = { 'vm-slots': MAX_VMS, 'fault-log': FAULT_LOG_SIZE };

/** A capacity filled to one short of full, full, or one past full. */
export const capacityPrefixArb = (config: MachineConfig): fc.Arbitrary<AbstractStep[]> =>
  fc
    .tuple(fc.constantFrom<Capacity>('vm-slots', 'fault-log'), fc.integer({ min: -1, max: 1 }))
    .map(([capacity, off]) => fillSteps(config, capacity, CAPACITIES[capacity] + off));
