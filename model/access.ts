// Host memory accesses (SEMANTICS §4) and the host fault log they feed (§6).
import { EPERM, ERANGE } from '../types/errno';
import { FAULT_LOG_SIZE, PA_PFNS } from '../types/config';
import type { ArgsOf } from '../types/calls';
import { isMemory } from './range';
import { hostState, page, type FaultLog, type State } from './state';

/** Succeeds on MMIO and on pages the host owns or lends; otherwise the abort is injected and logged. */
export function host_access(s: State, a: ArgsOf<'host_access'>): number {
  if (a.pfn >= PA_PFNS) return -ERANGE; // outside the IPA space: the stage-2 walk itself refuses
  if (!isMemory(s.config, a.pfn)) return 0;
  const st = hostState(page(s, a.pfn));
  if (st === 'OWNED' || st === 'SHARED_OWNED') return 0;
  logFault(s.faults, a.pfn);
  return -EPERM;
}

/** Logs an injected abort once per address; a full table warns once and counts the rest. */
export function logFault(log: FaultLog, pfn: number): void {
  log.aborts++;
  if (log.entries.includes(pfn)) return;
  if (log.entries.length < FAULT_LOG_SIZE) log.entries.push(pfn);
  else {
    log.warned = true;
    log.dropped++;
  }
}
