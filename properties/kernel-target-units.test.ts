// The real-kernel target's pure parts, checked without a kernel: the wire format, the decoding of
// the state probe, the relocation of trace pfns into the RAM window, and the deliberate deviations.
// (The target itself runs under `npm run test:kernel`.)
import { describe, expect, test } from 'vitest';
import { fc } from '@fast-check/vitest';
import { SEED } from './seed';
import { decodeHello, decodeResults, encodeBatch, OP, resultBytes } from '../checker/kernel/abi';
import { decodeProbe, hostReaches, hostView, hypView, probeAgrees } from '../checker/kernel/probe';
import { RAM_SHIFT, Relocation, windowPages, MAX_WINDOW_PAGES } from '../checker/kernel/relocate';
import { deviationOf } from '../checker/kernel/deviations';
import { DEFAULT_CONFIG, type MachineConfig } from '../types/config';
import { execModel, initialState, page } from '../model';
import { EPERM } from '../types/errno';

/** A result record as the agent sends it: ret, then three u64 words. */
function record(ret: bigint, v0: bigint, v1: bigint, v2: bigint): Buffer {
  const b = Buffer.alloc(resultBytes(1));
  b.writeBigInt64LE(ret, 0);
  [v0, v1, v2].forEach((v, i) => b.writeBigUInt64LE(v, 8 + 8 * i));
  return b;
}

const probeOf = (host: bigint, hyp: bigint, info: bigint) => decodeProbe(decodeResults(record(0n, host, hyp, info), 1)[0]);

describe('wire format', () => {
  test('ops are little-endian u64 triples after a u32 count', () => {
    const op = fc.record({ op: fc.constantFrom(...Object.values(OP)), a: fc.maxSafeNat(), b: fc.maxSafeNat() });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 20 }), (ops) => {
        const buf = encodeBatch(ops);
        expect(buf.readUInt32LE(0)).toBe(ops.length);
        ops.forEach((o, i) => {
          expect(buf.readBigUInt64LE(4 + 24 * i)).toBe(BigInt(o.op));
          expect(buf.readBigUInt64LE(12 + 24 * i)).toBe(BigInt(o.a));
          expect(buf.readBigUInt64LE(20 + 24 * i)).toBe(BigInt(o.b));
        });
      }),
      { seed: SEED },
    );
  });

  test('a result reads back its ret and words, halves and whole', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 31n), max: 2n ** 31n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (ret, w) => {
        const [r] = decodeResults(record(ret, w, 0n, 1n), 1);
        expect(r.ret).toBe(Number(ret));
        expect(r.v[0]).toBe(w);
        expect(BigInt(r.hi(0)) * 2n ** 32n + BigInt(r.lo(0))).toBe(w);
      }),
      { seed: SEED },
    );
  });

  test('HELLO names the window and the RAM', () => {
    const [r] = decodeResults(record(1n, 0x50000n, 4096n, 0x40000n | (0x51000n << 32n)), 1);
    expect(decodeHello(r)).toEqual({ windowPfn: 0x50000, windowPages: 4096, ramFirstPfn: 0x40000, ramEndPfn: 0x51000 });
    expect(() => decodeHello(decodeResults(record(2n, 0n, 0n, 0n), 1)[0])).toThrow(/ABI is version 2/);
  });
});

describe('state probe (6.12 encoding)', () => {
  const SW0 = 1n << 55n;
  const SW1 = 1n << 56n;
  test('an empty host entry is a page the host owns, not yet mapped', () => {
    const p = probeOf(0n, 0n, 0xffn);
    expect(hostView(p)).toEqual({ state: 'OWNED', owner: null });
    expect(hostReaches(p)).toBe(true);
    expect(probeAgrees(page(initialState(DEFAULT_CONFIG, []), 0x40000), p)).toBe(true);
  });
  test('software bits give the states, an annotation its owner', () => {
    expect(hostView(probeOf(0x500004ffn | SW0, 0n, 3n)).state).toBe('SHARED_OWNED');
    expect(hypView(probeOf(0n, 0x40000050000403n | SW1, 3n))).toBe('SHARED_BORROWED');
    expect(hypView(probeOf(0n, 0x40000050000403n, 3n))).toBe('OWNED');
    const annotated = probeOf(1n << 2n, 0n, 3n);
    expect(hostView(annotated)).toEqual({ state: 'NOPAGE', owner: 1 });
    expect(hostReaches(annotated)).toBe(false);
    expect(hostView(probeOf(0x2n, 0n, 3n)).owner).toBe(0); // the owner one bit too low
  });
  test('level is a signed byte, the refcount 16 bits', () => {
    const p = probeOf(0n, 0n, 0xffn | (7n << 16n) | (1n << 32n));
    expect(p.hostLevel).toBe(-1);
    expect(p.refcount).toBe(7);
    expect(p.memory).toBe(true);
  });
  test('the model and the probe agree exactly on the pin count', () => {
    const s = initialState(DEFAULT_CONFIG, []);
    execModel(s, { call: '__pkvm_host_share_hyp', args: { pfn: 0x40000 } });
    execModel(s, { call: 'hyp_pin_shared_mem', args: { pfn: 0x40000, nr_pages: 1 } });
    const shared = (pins: bigint) => probeOf(0x500004ffn | SW0, 0x40000050000403n | SW1, 3n | (pins << 16n));
    expect(probeAgrees(page(s, 0x40000), shared(1n))).toBe(true);
    expect(probeAgrees(page(s, 0x40000), shared(0n))).toBe(false);
  });
});

describe('relocation', () => {
  const hello = (config: MachineConfig) => ({ windowPfn: 0x50000, windowPages: windowPages(config), ramFirstPfn: 0x40000, ramEndPfn: 0x50000 + windowPages(config) });
  test('the default machine lands on the window whole', () => {
    const r = new Relocation(DEFAULT_CONFIG, hello(DEFAULT_CONFIG));
    expect(r.pfn(0x40000)).toBe(0x50000);
    expect(r.pfn(0x40fff)).toBe(0x50fff);
    expect(r.describePfn(0x50003)).toBe('pfn 0x40003 of the trace');
  });
  test('MMIO stays put unless it is real RAM, which moves past the end of RAM', () => {
    const r = new Relocation(DEFAULT_CONFIG, hello(DEFAULT_CONFIG));
    expect(r.pfn(0x9000)).toBe(0x9000);
    expect(r.pfn(0x41000)).toBe(0x41000 + RAM_SHIFT);
    expect(r.pfn(0x200000)).toBe(0x200000);
  });
  test('pfns alias modulo 2^52 as the kernel computes them', () => {
    const r = new Relocation(DEFAULT_CONFIG, hello(DEFAULT_CONFIG));
    expect(r.pfn(2 ** 52 + 0x40011)).toBe(2 ** 52 + 0x50011);
  });
  test('regions keep their offsets inside 2 MiB blocks and never overlap', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 511 }), fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 3000 }), (offset, nr1, nr2) => {
        const config: MachineConfig = { memory: [[0x40000 + offset, nr1], [0x100000, nr2]], pageSize: 4096 };
        const r = new Relocation(config, hello(config));
        const firsts = [r.pfn(0x40000 + offset), r.pfn(0x100000)];
        expect(firsts[0] % 512).toBe(offset);
        expect(firsts[1] % 512).toBe(0);
        expect(firsts[1]).toBeGreaterThanOrEqual(firsts[0] + nr1);
        expect(r.pfn(0x100000 + nr2 - 1) - 0x50000).toBeLessThan(windowPages(config));
      }),
      { seed: SEED },
    );
  });
  test('a machine larger than the window is refused with one line', () => {
    expect(() => windowPages({ memory: [[0x40000, MAX_WINDOW_PAGES + 1]], pageSize: 4096 })).toThrow(/at most/);
  });
});

describe('deliberate deviations', () => {
  test('unshare_ffa of a page the host shares with hyp is not sent; of a page the host owns it is', () => {
    const s = initialState(DEFAULT_CONFIG, []);
    execModel(s, { call: '__pkvm_host_share_hyp', args: { pfn: 0x40000 } });
    const call = { call: '__pkvm_host_unshare_ffa', args: { pfn: 0x40000, nr_pages: 1 } } as const;
    expect(deviationOf(s, call, -EPERM)).toBeDefined();
    expect(deviationOf(s, { ...call, args: { pfn: 0x40001, nr_pages: 1 } }, -EPERM)).toBeUndefined();
  });
  test('a range the model refuses past the 40-bit PA space is not sent; one it accepts is', () => {
    const s = initialState(DEFAULT_CONFIG, []);
    const call = { call: '__pkvm_host_donate_hyp', args: { pfn: 0x40000, nr_pages: 2 ** 28 } } as const;
    expect(deviationOf(s, call, -EPERM)).toBeDefined();
    expect(deviationOf(s, call, 0)).toBeUndefined();
  });
});
