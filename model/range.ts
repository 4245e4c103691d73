// Range arguments (SEMANTICS §3 rule 1): inside the physical address space, then wholly memory
// (one region) or wholly MMIO.
import { EINVAL, EPERM } from '../types/errno';
import { PA_PFNS, type MachineConfig } from '../types/config';

/** 0 when [pfn, pfn + nr) is inside one memory region; else the errno rule 1 gives. nr must be > 0. */
export function checkRange(config: MachineConfig, pfn: number, nr: number): number {
  if (pfn + nr > PA_PFNS) return -EINVAL;
  const end = pfn + nr;
  for (const [first, size] of config.memory) {
    if (pfn >= first && end <= first + size) return 0;
    if (pfn < first + size && end > first) return -EINVAL; // straddles a memory/MMIO boundary
  }
  return -EPERM; // wholly MMIO
}

export function isMemory(config: MachineConfig, pfn: number): boolean {
  for (const [first, size] of config.memory) if (pfn >= first && pfn < first + size) return true;
  return false;
}
