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

/**
 * One result as it came back. The hot path (probes, calls) reads 32-bit halves; the 64-bit words as
 * BigInt are made only when asked for (`v`).
 */
export class OpResult {
  readonly ret: number;
  private words: readonly [bigint, bigint, bigint] | null = null;

  constructor(
    private readonly buf: Buffer,
    private readonly at: number,
  ) {
    this.ret = buf.readInt32LE(at + 4) * 2 ** 32 + buf.readUInt32LE(at);
  }

  /** Low and high 32 bits of v[i]. */
  lo(i: number): number {
    return this.buf.readUInt32LE(this.at + 8 + 8 * i);
  }

  hi(i: number): number {
    return this.buf.readUInt32LE(this.at + 12 + 8 * i);
  }

  get v(): readonly [bigint, bigint, bigint] {
    this.words ??= [this.buf.readBigUInt64LE(this.at + 8), this.buf.readBigUInt64LE(this.at + 16), this.buf.readBigUInt64LE(this.at + 24)];
    return this.words;
  }
}

const OP_BYTES = 24;
const RES_BYTES = 32;

/** Writes a non-negative integer below 2^64 as u64 (traces hold nothing above 2^53). */
function writeU64(buf: Buffer, n: number, at: number): void {
  const hi = Math.floor(n / 2 ** 32);
  buf.writeUInt32LE(n - hi * 2 ** 32, at);
  buf.writeUInt32LE(hi % 2 ** 32, at + 4);
}

export function encodeBatch(ops: readonly Op[]): Buffer {
  const buf = Buffer.alloc(4 + ops.length * OP_BYTES);
  buf.writeUInt32LE(ops.length, 0);
  for (let i = 0; i < ops.length; i++) {
    const o = ops[i];
    const at = 4 + i * OP_BYTES;
    writeU64(buf, o.op, at);
    writeU64(buf, o.a, at + 8);
    writeU64(buf, o.b, at + 16);
  }
  return buf;
}

export const resultBytes = (count: number): number => count * RES_BYTES;

export function decodeResults(buf: Buffer, count: number): OpResult[] {
  const out: OpResult[] = [];
  for (let i = 0; i < count; i++) out.push(new OpResult(buf, i * RES_BYTES));
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
