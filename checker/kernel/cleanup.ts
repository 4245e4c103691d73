// Between sequences the kernel target puts every page back in its boot state, driven by what the
// model knows the sequence left behind (then a scan checks it).
import type { State } from '../../model/state';
import { OP, type Op } from './abi';

/** Ops that return every page the model says left its boot state to the host, unpinned and unshared. */
export function cleanupOps(model: State, real: (p: number) => number): Op[] {
  const unpin: Op[] = [];
  const unshare: Op[] = [];
  const giveBack: Op[] = [];
  for (const [p, pg] of model.pages) {
    const a = real(p);
    for (let i = 0; i < pg.pins; i++) unpin.push({ op: OP.UNPIN, a, b: 1 });
    if (pg.hyp) unshare.push({ op: OP.UNSHARE_HYP, a, b: 1 });
    if (pg.ffa) unshare.push({ op: OP.UNSHARE_FFA, a, b: 1 });
    if (pg.owner === 'hyp') giveBack.push({ op: OP.HYP_DONATE_HOST, a, b: 1 });
  }
  return [...unpin, ...unshare, ...giveBack];
}
