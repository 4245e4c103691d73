// The checker's own walk of a snapshot copy read back from the real kernel's memory: the copy's
// table pages (raw 64-bit descriptors) from its PGD down, in address order as the kernel's walker
// visits them, and the digest of its non-zero leaves that the patch's EL2 code computes over the
// host stage-2 (include/uapi/linux/pkvm_check.h: PKVM_CHECK_DIGEST_*), so that the two compare.

/** The host stage-2's shape on the kernel, as EL2 reports it. */
export interface Geometry {
  readonly startLevel: number;
  readonly pgdPages: number;
  readonly iaBits: number;
}

export interface CopyWalk {
  /** The copy's table pages below its PGD (real pfns), in walk order. */
  readonly tables: number[];
  readonly digest: bigint;
  readonly leaves: number;
  /** Why the walk could not go on (a table page not read, or used twice), or null. */
  readonly problem: string | null;
}

const U64 = (1n << 64n) - 1n;
const SEED = 0xcbf29ce484222325n;
const MUL = 0x9e3779b97f4a7c15n;
const LAST_LEVEL = 3;
/** Bits 47:12 of a descriptor: the output address (4 KiB granule, no LPA2). */
const ADDR_MASK = ((1n << 48n) - 1n) & ~0xfffn;
/** Valid and table type: a table descriptor above the last level. */
const TABLE_BITS = 3n;

export function digestMix(h: bigint, v: bigint): bigint {
  const m = ((h ^ v) * MUL) & U64;
  return m ^ (m >> 29n);
}

const granuleShift = (level: number): bigint => BigInt(12 + 9 * (LAST_LEVEL - level));

export function walkCopy(pages: ReadonlyMap<number, BigUint64Array>, pgdPfn: number, g: Geometry): CopyWalk {
  const tables: number[] = [];
  const seen = new Set<number>();
  let digest = SEED;
  let leaves = 0;
  let problem: string | null = null;
  const visit = (words: BigUint64Array, level: number, base: bigint): void => {
    for (let i = 0; i < words.length && problem === null; i++) {
      const pte = words[i];
      const addr = base + (BigInt(i) << granuleShift(level));
      if (level < LAST_LEVEL && (pte & TABLE_BITS) === TABLE_BITS) {
        const child = Number((pte & ADDR_MASK) >> 12n);
        const next = pages.get(child);
        if (seen.has(child)) problem = `table page kernel pfn 0x${child.toString(16)} is used twice by the copy`;
        else if (!next) problem = `the copy's entry for 0x${addr.toString(16)} (level ${level}) points at kernel pfn 0x${child.toString(16)}, which is not one of the memcache pages`;
        if (problem !== null || !next) return;
        seen.add(child);
        tables.push(child);
        visit(next, level + 1, addr);
      } else if (pte !== 0n) {
        digest = digestMix(digestMix(digestMix(digest, addr), BigInt(level)), pte);
        leaves++;
      }
    }
  };
  const pgd = new BigUint64Array(512 * g.pgdPages);
  for (let i = 0; i < g.pgdPages; i++) {
    const words = pages.get(pgdPfn + i);
    if (!words) return { tables, digest, leaves, problem: `the copy's PGD page kernel pfn 0x${(pgdPfn + i).toString(16)} was not read` };
    pgd.set(words, 512 * i);
  }
  visit(pgd, g.startLevel, 0n);
  return { tables, digest, leaves, problem };
}
