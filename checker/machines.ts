// The machines a random run rotates through on the simulation when no config is given: the default
// (16 MiB at 1 GiB) and layouts whose bugs the default cannot show: a second region, memory above
// 4 GiB, a region whose ends are not 2 MiB-aligned; and the default with a capacity filled. Each is bootable (hyp's carve-out fits in its
// largest region, hyp/setup.ts). A run splits its sequences over them in this order, the default first
// with the run's own seed, so the default's part is the start of what a single-machine run generates.
// Machines added later share an existing machine's part (`halfOf`), so the default's part stays as it was.
import type fc from 'fast-check';
import { DEFAULT_CONFIG, type MachineConfig } from '../types/config';
import { capacityPrefixArb, pinPrefixArb } from './capacity';
import type { AbstractStep } from './generators';

export interface Machine {
  readonly name: string;
  readonly config: MachineConfig;
  /** The machine's share of a run's sequences, in parts of ROTATION_PARTS... */
  readonly parts: number;
  /** ...but never more than this many (its sequences are long). */
  readonly maxRuns?: number;
  /** Steps that start each of its sequences (checker/capacity.ts). */
  readonly prefix?: (config: MachineConfig) => fc.Arbitrary<AbstractStep[]>;
  /** Instead of parts of its own: half (rounded down) of the named machine's share, which keeps the rest. */
  readonly halfOf?: string;
}

/** The pins a page holds on the pin-capacity machine: a simulation-only stand-in for the u16's 65,535. */
export const SMALL_PIN_LIMIT = 4;

export const ROTATION: readonly Machine[] = [
  { name: 'default', config: DEFAULT_CONFIG, parts: 3 },
  // Two regions in different GiBs; the carve-out lives in the larger, second one, so the first
  // region's last pages are the host's, and "the last region" differs from "the first".
  { name: 'two-regions', config: { memory: [[0x40000, 1024], [0x80000, 3072]], pageSize: 4096 }, parts: 1 },
  // A board's low and high memory (Juno-like: 2 GiB and 34 GiB); pfns and addresses above 32 bits.
  { name: 'above-4gib', config: { memory: [[0x80000, 512], [0x880000, 4096]], pageSize: 4096 }, parts: 1 },
  // One region that starts and ends inside 2 MiB blocks (1 MiB + 1.5 MiB in, 3900 pages).
  { name: 'unaligned', config: { memory: [[0x40180, 3900]], pageSize: 4096 }, parts: 1 },
  // The default machine with the 255 VM slots or the 128-entry fault log filled to one short of full,
  // full or one past before the random steps: up to 256 extra calls a sequence, so at most 40 of them
  // (half of its share goes to pin-capacity).
  { name: 'full-capacity', config: DEFAULT_CONFIG, parts: 1, maxRuns: 40, prefix: capacityPrefixArb },
  // The default machine whose pages hold SMALL_PIN_LIMIT pins (config.pinLimit, types/config.ts), with
  // one page shared with hyp and pinned to one short of that, the limit, or one past (a panic) first.
  { name: 'pin-capacity', config: { ...DEFAULT_CONFIG, pinLimit: SMALL_PIN_LIMIT }, parts: 0, halfOf: 'full-capacity', prefix: pinPrefixArb },
];

const ROTATION_PARTS = ROTATION.reduce((n, m) => n + m.parts, 0);

export interface RotationPart {
  readonly machine: Machine;
  readonly runs: number;
  readonly seed: number;
}

/** The seed of the i-th machine's part: the run's own for the default, a fixed mix of it for the others. */
export function partSeed(seed: number, i: number): number {
  if (i === 0) return seed;
  return (Math.imul(seed ^ (i * 0x9e3779b9), 0x85ebca6b) >>> 1) % 2 ** 31;
}

/**
 * How `runs` sequences split over the rotation: each machine its share (rounded down), or half of
 * another's, the default the rest; a machine whose share is 0 (a run of a few sequences) is left out.
 */
export function rotationParts(runs: number, seed: number): RotationPart[] {
  const shares = ROTATION.map((m) => Math.min(Math.floor((runs * m.parts) / ROTATION_PARTS), m.maxRuns ?? runs));
  ROTATION.forEach((m, i) => {
    if (m.halfOf === undefined) return;
    const of = ROTATION.findIndex((o) => o.name === m.halfOf);
    shares[i] = Math.min(Math.floor(shares[of] / 2), m.maxRuns ?? runs);
    shares[of] -= shares[i];
  });
  shares[0] = runs - shares.slice(1).reduce((a, b) => a + b, 0);
  return ROTATION.map((machine, i) => ({ machine, runs: shares[i], seed: partSeed(seed, i) })).filter((p) => p.runs > 0);
}
