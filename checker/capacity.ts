// Steps that fill hyp's fixed capacities: the 255 VM slots, the 128-entry host fault log and a page's
// pins. A property prefixes a random sequence with one of them, filled to one short of full, exactly
// full or one past, so that the random steps after it run where "full" and "one past full" are decided.
import fc from 'fast-check';
import { hypLayout } from '../hyp/setup';
import { FAULT_LOG_SIZE, MAX_VMS, VM_MIN_PAGES, type MachineConfig } from '../types/config';
import { pinLimit } from '../types/kernel';
import type { AbstractStep } from './generators';
import type { TraceStep } from './vocabulary';

export type Capacity = 'vm-slots' | 'fault-log' | 'pins';

const fixed = (step: TraceStep): AbstractStep => ({ call: step.call, d: [], fixed: step });

/**
 * `count` steps that each take one unit of `capacity`: a VM created from pages of its own (VM_MIN_PAGES
 * host pages each, from the middle of the largest region, below hyp's carve-out), a host read of a
 * carve-out page (refused and logged), or a pin of the page just below those VMs' pages, which the
 * host shares with hyp in one more step first.
 */
export function fillSteps(config: MachineConfig, capacity: Capacity, count: number): AbstractStep[] {
  const { carveout } = hypLayout(config);
  if (capacity === 'fault-log') return Array.from({ length: count }, (_, i) => fixed({ call: 'host_access', args: { pfn: carveout[0] + (i % carveout[1]), write: false } }));
  const base = carveout[0] - (MAX_VMS + 1) * VM_MIN_PAGES;
  if (capacity === 'pins') {
    const pfn = base - 1;
    const pins = Array.from({ length: count }, () => fixed({ call: 'hyp_pin_shared_mem', args: { pfn, nr_pages: 1 } }));
    return [fixed({ call: '__pkvm_host_share_hyp', args: { pfn } }), ...pins];
  }
  return Array.from({ length: count }, (_, i) => fixed({ call: '__pkvm_init_vm', args: { pfn: base + i * VM_MIN_PAGES, nr_pages: VM_MIN_PAGES } }));
}

/** How many units of `capacity` the machine has: pins come from its pinLimit (types/kernel.ts). */
export function capacityOf(config: MachineConfig, capacity: Capacity): number {
  if (capacity === 'pins') return pinLimit(config);
  return capacity === 'vm-slots' ? MAX_VMS : FAULT_LOG_SIZE;
}

/** One of `capacities`, filled to one short of full, full, or one past full. */
const fillArb =
  (...capacities: Capacity[]) =>
  (config: MachineConfig): fc.Arbitrary<AbstractStep[]> =>
    fc
      .tuple(fc.constantFrom<Capacity>(...capacities), fc.integer({ min: -1, max: 1 }))
      .map(([capacity, off]) => fillSteps(config, capacity, capacityOf(config, capacity) + off));

/** The VM slots or the fault log, filled to one short of full, full, or one past full. */
export const capacityPrefixArb = fillArb('vm-slots', 'fault-log');

/**
 * A page's pins, to one short of the machine's pinLimit, the limit, or one past (which panics). On the
 * kernel's u16 limit that is 65,536 calls: use a machine with a small simulation-only pinLimit.
 */
export const pinPrefixArb = fillArb('pins');
