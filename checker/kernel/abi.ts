// The agent's wire format: the ops of /dev/pkvm_check and their results, as laid out by the
// project's kernel patch (kernel/patches/, include/uapi/linux/pkvm_check.h). A batch to the guest
// is a little-endian u32 count and that many 24-byte ops { op, a, b }; the answer is a count and
// that many 32-byte results { ret, v[3] }. pfns and values travel as u64 (BigInt at the edge only).

export const ABI_VERSION = 1;
export const MAX_OPS = 4096;

export const OP = {
  HELLO: 0,
  SHARE_HYP: 1,
  UNSHARE_HYP: 2,
  DONATE_HYP: 3,
  HYP_DONATE_HOST: 4,
  SHARE_FFA: 5,
  UNSHARE_FFA: 6,
  PIN: 7,
  UNPIN: 8,
  HOST_READ: 9,
  HOST_WRITE: 10,
  PROBE: 11,
  SCAN: 12,
  /** Panics the hypervisor with a known call chain (kernel/patches/0002; checker/kernel/unwind.ts). */
  STACK: 13,
  /** The host stage-2 snapshot (kernel/patches/0003; checker/snapshot/kernel.ts). */
  SNAPSHOT: 14,
  SNAPSHOT_INFO: 15,
  /** Host accesses at a byte address (8-aligned): 3 words read, or one written. */
  HOST_READ_WORDS: 16,
  HOST_WRITE_WORD: 17,
} as const;
export type OpCode = (typeof OP)[keyof typeof OP];

/** What the device answers to an op that would reach RAM outside its window (-EXDEV). */
export const REFUSED = -18;

export interface Op {
  readonly op: OpCode;
  readonly a: number;
  readonly b: number;
}

export interface OpResult {
  readonly ret: number;
  readonly v: readonly [bigint, bigint, bigint];
}

const OP_BYTES = 24;
const RES_BYTES = 32;

/** Clamps a (possibly huge) JS number to u64, the way the kernel receives it. */
const u64 = (n: number): bigint => BigInt.asUintN(64, BigInt(Math.trunc(n)));

export function encodeBatch(ops: readonly Op[]): Buffer {
  const buf = Buffer.alloc(4 + ops.length * OP_BYTES);
  buf.writeUInt32LE(ops.length, 0);
  ops.forEach((o, i) => {
    const at = 4 + i * OP_BYTES;
    buf.writeBigUInt64LE(BigInt(o.op), at);
    buf.writeBigUInt64LE(u64(o.a), at + 8);
    buf.writeBigUInt64LE(u64(o.b), at + 16);
  });
  return buf;
}

export const resultBytes = (count: number): number => count * RES_BYTES;

export function decodeResults(buf: Buffer, count: number): OpResult[] {
  const out: OpResult[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * RES_BYTES;
    out.push({
      ret: Number(buf.readBigInt64LE(at)),
      v: [buf.readBigUInt64LE(at + 8), buf.readBigUInt64LE(at + 16), buf.readBigUInt64LE(at + 24)],
    });
  }
  return out;
}

/** The HELLO answer: the RAM window the ops may touch, and where the guest's RAM lies. */
export interface Hello {
  readonly windowPfn: number;
  readonly windowPages: number;
  readonly ramFirstPfn: number;
  readonly ramEndPfn: number;
}

export function decodeHello(r: OpResult): Hello {
  if (r.ret !== ABI_VERSION) throw new Error(`the kernel's pkvm-check ABI is version ${r.ret}, this checker speaks ${ABI_VERSION}`);
  return {
    windowPfn: Number(r.v[0]),
    windowPages: Number(r.v[1]),
    ramFirstPfn: Number(r.v[2] & 0xffffffffn),
    ramEndPfn: Number(r.v[2] >> 32n),
  };
}
