// What the state probe says about a page, in the model's terms. The probe returns the raw host
// stage-2 and hyp stage-1 entries (kernel/patches/: __pkvm_check_probe); this is the one place
// that decodes them, following the 6.12 encoding (docs/semantics.md): a valid leaf carries the
// page state in its software bits 55 (SHARED_OWNED) and 56 (SHARED_BORROWED); an invalid non-zero
// host entry is an annotation whose bits 9:2 name the owner (1 = hyp); a zero host entry is a page
// the host owns that its stage-2 has not mapped yet.
import { hostState, hypState, type Page, type PageState } from '../../model/state';
import { hex } from '../vocabulary';
import type { OpResult } from './abi';

const VALID = 1n;
const SW0 = 1n << 55n;
const SW1 = 1n << 56n;
const OWNER_SHIFT = 2n;
const OWNER_MASK = 0xffn;
/** PKVM_ID_HYP in 6.12's enum pkvm_component_id. */
export const OWNER_ID_HYP = 1;

export interface Probe {
  readonly hostPte: bigint;
  readonly hypPte: bigint;
  readonly hostLevel: number;
  readonly refcount: number;
  readonly memory: boolean;
}

export function decodeProbe(r: OpResult): Probe {
  const info = r.v[2];
  return {
    hostPte: r.v[0],
    hypPte: r.v[1],
    hostLevel: Number(BigInt.asIntN(8, info & 0xffn)),
    refcount: Number((info >> 16n) & 0xffffn),
    memory: (info & (1n << 32n)) !== 0n,
  };
}

const stateBits = (pte: bigint): PageState => ((pte & SW0) !== 0n ? 'SHARED_OWNED' : (pte & SW1) !== 0n ? 'SHARED_BORROWED' : 'OWNED');

/** The host's state of the page, and the owner id of an annotation. */
export function hostView(p: Probe): { readonly state: PageState; readonly owner: number | null } {
  if (p.hostPte === 0n) return { state: 'OWNED', owner: null };
  if ((p.hostPte & VALID) !== 0n) return { state: stateBits(p.hostPte), owner: null };
  return { state: 'NOPAGE', owner: Number((p.hostPte >> OWNER_SHIFT) & OWNER_MASK) };
}

export const hypView = (p: Probe): PageState => ((p.hypPte & VALID) !== 0n ? stateBits(p.hypPte) : 'NOPAGE');

/** Whether a host load or store would be let through without a fault that BUGs the hypervisor. */
export const hostReaches = (p: Probe): boolean => p.hostPte === 0n || (p.hostPte & VALID) !== 0n;

/** "host SHARED_OWNED (level 3), hyp SHARED_BORROWED, 1 pin" */
export function describeProbe(p: Probe): string {
  const h = hostView(p);
  const host = h.owner === null ? `host ${h.state}` : `host NOPAGE (owner id ${h.owner})`;
  const where = p.hostPte === 0n ? 'unmapped' : `level ${p.hostLevel}, pte ${hex(Number(p.hostPte & 0xffffffffffffn))}`;
  return `${host} (${where}), hyp ${hypView(p)}, refcount ${p.refcount}`;
}

export function describeModelPage(p: Page): string {
  return `host ${hostState(p)}${p.owner === 'hyp' ? ` (owner id ${OWNER_ID_HYP})` : ''}, hyp ${hypState(p)}, refcount ${p.pins}`;
}

/** The model's page and the probe agree: states, the owner of an annotation, the pin count. */
export function probeAgrees(want: Page, got: Probe): boolean {
  const h = hostView(got);
  if (h.state !== hostState(want) || hypView(got) !== hypState(want) || got.refcount !== want.pins) return false;
  return want.owner !== 'hyp' || h.owner === OWNER_ID_HYP;
}
