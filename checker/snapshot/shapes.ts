// Host stage-2 shapes for the snapshot: ownership calls and host accesses that leave annotations,
// shared pages, block mappings and split blocks (tables) across the memory, resolved against the live
// model like the snapshot steps (one u32 draw each, plus a few for the pfn).
import fc from 'fast-check';
import type { MachineConfig } from '../../types/config';
import { hostState, page, type State } from '../../model/state';
import type { TraceStep } from '../vocabulary';

export const SHAPE_DRAWS = 3;

export const shapeStepArb: fc.Arbitrary<readonly number[]> = fc.array(fc.nat({ max: 0xffffffff }), { minLength: SHAPE_DRAWS, maxLength: SHAPE_DRAWS });

/** A pfn in memory: mostly spread over 2 MiB regions (so that tables multiply), sometimes next door. */
function pfnOf(config: MachineConfig, d: number): number {
  const [first, nr] = config.memory[d % config.memory.length];
  const region = (d >>> 4) % Math.max(1, Math.floor(nr / 512));
  return first + region * 512 + ((d >>> 12) % 512);
}

export function resolveShapeStep(draw: readonly number[], model: State, config: MachineConfig): TraceStep {
  const pfn = pfnOf(config, draw[1] ?? 0);
  switch ((draw[0] ?? 0) % 6) {
    case 0:
      return { call: '__pkvm_host_donate_hyp', args: { pfn, nr_pages: 1 + ((draw[2] ?? 0) % 3) } };
    case 1:
      return { call: '__pkvm_host_share_hyp', args: { pfn } };
    case 2: {
      // Give back a page hyp holds from a plain donation (leaves a split block behind).
      const free = [...model.pages].filter(([, p]) => p.owner === 'hyp' && p.use === 'free').map(([p]) => p);
      const p = free.length > 0 ? free[(draw[2] ?? 0) % free.length] : pfn;
      return { call: '__pkvm_hyp_donate_host', args: { pfn: p, nr_pages: 1 } };
    }
    case 3:
      return { call: '__pkvm_host_share_ffa', args: { pfn, nr_pages: 1 } };
    case 4:
      return { call: 'host_access', args: { pfn: page(model, pfn).owner === 'host' ? pfn : pfn + 1, write: (draw[2] ?? 0) % 2 === 0 } };
    default: {
      // Fault in a page next to one the host shares: an OWNED leaf beside a SHARED_OWNED one, which
      // ptdump must print as two runs.
      const shared = [...model.pages].filter(([, p]) => hostState(p) === 'SHARED_OWNED').map(([p]) => p);
      const d = draw[2] ?? 0;
      const p = shared.length > 0 ? shared[(d >>> 2) % shared.length] + ((d & 2) === 0 ? 1 : -1) : pfn;
      return { call: 'host_access', args: { pfn: p, write: d % 2 === 0 } };
    }
  }
}
