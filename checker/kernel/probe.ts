// What the state probe says about a page, in the model's terms. The probe returns the raw host
// stage-2 and hyp stage-1 entries (kernel/patches/: __pkvm_check_probe); this is the one place
// that decodes them, following the 6.12 encoding (docs/semantics.md): a valid leaf carries the
// page state in its software bits 55 (SHARED_OWNED) and 56 (SHARED_BORROWED); an invalid non-zero
// host entry is an annotation whose bits 9:2 name the owner (1 = hyp); a zero host entry is a page
// the host owns that its stage-2 has not mapped yet.
import { hostState, hypState, type Page, type PageState } from '../../model/state';
import type { OpResult } from './abi';

/** A descriptor as its two 32-bit halves (the probe is read on the hot path: no BigInt). */
interface Pte {
  readonly lo: number;
  readonly hi: number;
}

const VALID = 1;
/** Software bits 55 and 56, in the high half. */
const SW0_HI = 1 << (55 - 32);
const SW1_HI = 1 << (56 - 32);
const OWNER_SHIFT = 2;
const OWNER_MASK = 0xff;
/** PKVM_ID_HYP in 6.12's enum pkvm_component_id. */
export const OWNER_ID_HYP = 1;

export interface Probe {
  readonly host: Pte;
  readonly hyp: Pte;
  readonly hostLevel: number;
  readonly refcount: number;
  readonly memory: boolean;
}

export function decodeProbe(r: OpResult): Probe {
  const info = r.lo(2);
  return {
    host: { lo: r.lo(0), hi: r.hi(0) },
    hyp: { lo: r.lo(1), hi: r.hi(1) },
    hostLevel: (info << 24) >> 24, // a signed byte
    refcount: (info >>> 16) & 0xffff,
    memory: (r.hi(2) & 1) !== 0,
  };
}

const isZero = (pte: Pte): boolean => pte.lo === 0 && pte.hi === 0;
const isValid = (pte: Pte): boolean => (pte.lo & VALID) !== 0;
const stateBits = (pte: Pte): PageState => ((pte.hi & SW0_HI) !== 0 ? 'SHARED_OWNED' : (pte.hi & SW1_HI) !== 0 ? 'SHARED_BORROWED' : 'OWNED');

/** A descriptor in hex, as the kernel prints it. */
export const hexPte = (pte: Pte): string => `0x${((BigInt(pte.hi) << 32n) | BigInt(pte.lo)).toString(16)}`;

/** The host's state of the page, and the owner id of an annotation. */
export function hostView(p: Probe): { readonly state: PageState; readonly owner: number | null } {
  if (isZero(p.host)) return { state: 'OWNED', owner: null };
  if (isValid(p.host)) return { state: stateBits(p.host), owner: null };
  return { state: 'NOPAGE', owner: (p.host.lo >>> OWNER_SHIFT) & OWNER_MASK };
}

export const hypView = (p: Probe): PageState => (isValid(p.hyp) ? stateBits(p.hyp) : 'NOPAGE');

/** Whether a host load or store would be let through without a fault that BUGs the hypervisor. */
export const hostReaches = (p: Probe): boolean => isZero(p.host) || isValid(p.host);

/** "host SHARED_OWNED (level 3), hyp SHARED_BORROWED, 1 pin" */
export function describeProbe(p: Probe): string {
  const h = hostView(p);
  const host = h.owner === null ? `host ${h.state}` : `host NOPAGE (owner id ${h.owner})`;
  const where = isZero(p.host) ? 'unmapped' : `level ${p.hostLevel}, pte ${hexPte(p.host)}`;
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
