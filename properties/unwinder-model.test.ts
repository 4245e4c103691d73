// The unwinder spec on hand-made stacks (each rule of docs/semantics.md §9 once), the host's view of the
// protected-mode buffer, %pB symbolization, and how corruption patterns expand into words.
import { describe, expect, test } from 'vitest';
import { corruptionWords } from '../checker/unwinder/scenario';
import { admitted, expectedLines, hostEntries, type UnwindSpec } from '../model/unwind';

const A = { low: 0x1000n, high: 0x1100n };
const B = { low: 0x2000n, high: 0x2100n };

/** A spec over stacks A and B holding the given records (fp -> [next fp, lr]). */
function spec(records: Record<number, readonly [bigint, bigint]>, fp: bigint, extra: Partial<UnwindSpec> = {}): UnwindSpec {
  const read = (addr: bigint): bigint => {
    const base = addr & ~15n;
    const r = records[Number(base)];
    if (!r) return 0n;
    return addr === base ? r[0] : r[1];
  };
  return {
    mode: 'nonprotected',
    format: 'upstream',
    stacks: [A, B],
    read,
    fp,
    pc: 0x99n,
    entries: 8,
    bufferWrites: [],
    elrVirt: 0n,
    elrPhys: 0n,
    kimageVoffset: 0n,
    kaslrOffset: 0n,
    vaBits: 48n,
    symbols: [],
    ...extra,
  };
}

describe('unwinder spec', () => {
  test('records rise on one stack, cross to the other once, and never come back', () => {
    const s = spec({ 0x1000: [0x1010n, 1n], 0x1010: [0x2000n, 2n], 0x2000: [0x2010n, 3n], 0x2010: [0x1020n, 4n], 0x1020: [0x3000n, 5n] }, 0x1000n);
    expect(admitted(s)).toEqual({ pcs: [0x99n, 1n, 2n, 3n, 4n], stop: 'stack-left' });
  });

  test('a record less than 16 bytes above the previous one on the same stack ends the walk (the kernel consumed it)', () => {
    expect(admitted(spec({ 0x1010: [0x1010n, 1n] }, 0x1010n))).toEqual({ pcs: [0x99n, 1n], stop: 'consumed' });
    expect(admitted(spec({ 0x1020: [0x1010n, 1n], 0x1010: [0x1020n, 2n] }, 0x1020n))).toEqual({ pcs: [0x99n, 1n], stop: 'consumed' });
    // Overlapping: 8 bytes above, the record's second word is read as the next fp.
    expect(admitted(spec({ 0x1010: [0x1018n, 1n] }, 0x1010n))).toEqual({ pcs: [0x99n, 1n], stop: 'consumed' });
    // Adjacent records are fine: the next one may start where the previous one ends.
    expect(admitted(spec({ 0x1010: [0x1020n, 1n], 0x1020: [0x5000n, 2n] }, 0x1010n))).toEqual({ pcs: [0x99n, 1n, 2n], stop: 'off-stack' });
  });

  test('misaligned, straddling, wrapping and off-stack pointers end the walk', () => {
    const cases: readonly [bigint, string][] = [
      [0x1004n, 'misaligned'],
      [0x10f8n, 'off-stack'],
      [0x0ff8n, 'off-stack'],
      [(1n << 64n) - 8n, 'off-stack'],
      [0x5000n, 'off-stack'],
    ];
    for (const [fp, stop] of cases) expect(admitted(spec({}, fp))).toEqual({ pcs: [0x99n], stop });
    // The last 16 bytes of a stack still hold a record.
    expect(admitted(spec({ 0x10f0: [0n, 1n] }, 0x10f0n)).pcs).toEqual([0x99n, 1n]);
  });

  test('protected mode: EL2 keeps N - 1 entries and a 0; the host reads at most N, up to a 0', () => {
    const chain = { 0x1000: [0x1010n, 1n], 0x1010: [0x1020n, 2n], 0x1020: [0x1030n, 3n], 0x1030: [0x5000n, 4n] } as const;
    const p = (extra: Partial<UnwindSpec>) => hostEntries(spec(chain, 0x1000n, { mode: 'protected', entries: 4, ...extra }));
    expect(p({})).toEqual([0x99n, 1n, 2n]);
    expect(p({ bufferWrites: [[3, 7n]] })).toEqual([0x99n, 1n, 2n, 7n]);
    expect(p({ bufferWrites: [[1, 0n]] })).toEqual([0x99n]);
    expect(hostEntries(spec(chain, 0x1000n))).toEqual([0x99n, 1n, 2n, 3n, 4n]);
  });

  test('printing: hyp_offset, tags masked, %pB looks up addr - 1, unknown addresses in hex', () => {
    const kaslr = 0x200000n;
    const lines = expectedLines(
      spec({ 0x1000: [0x5000n, (0x7fn << 48n) | 0x8010n] }, 0x1000n, {
        pc: 0x8004n,
        elrVirt: 0x8008n,
        elrPhys: 0x40008008n,
        kimageVoffset: 0xffff0000c0000000n + kaslr,
        kaslrOffset: kaslr,
        symbols: [{ name: '__kvm_nvhe_f', start: 0xffff000100008000n + kaslr, size: 0x10n }],
        format: 'v5',
      }),
    );
    // hyp_offset = elr_in_kimg - kaslr - elr_virt = 0xffff000100000000.
    expect(lines).toEqual([
      'nVHE hyp panic at: [<ffff000100008008>] __kvm_nvhe_f+0x8/0x10!',
      'Non-protected nVHE HYP call trace:',
      ' [<ffff000100008004>] __kvm_nvhe_f+0x4/0x10',
      ' [<ffff000100008010>] __kvm_nvhe_f+0x10/0x10',
      '---- End of Non-protected nVHE HYP call trace ----',
    ]);
    expect(expectedLines(spec({}, 0x5000n, { pc: 0x9000n })).slice(1)).toEqual(['nVHE call trace:', ' [<0000000000009000>] 0x9000', '---[ end nVHE call trace ]---']);
  });
});

describe('corruption patterns', () => {
  test('count, stride and step write a word pattern, dropping what falls outside', () => {
    expect(corruptionWords({ stack: 'hyp', offset: 0, value: '0x10', count: 3, stride: 16, step: 16 }, 4096)).toEqual([
      { offset: 0, value: 0x10n },
      { offset: 16, value: 0x20n },
      { offset: 32, value: 0x30n },
    ]);
    expect(corruptionWords({ stack: 'hyp', offset: 4080, value: '0x1', count: 5, stride: 8 }, 4096)).toEqual([
      { offset: 4080, value: 1n },
      { offset: 4088, value: 1n },
    ]);
    expect(corruptionWords({ stack: 'overflow', offset: 4092, value: '0x1' }, 4096)).toEqual([]);
    expect(corruptionWords({ stack: 'stacktrace', offset: 4, value: '0x1' }, 4096)).toEqual([]);
    expect(corruptionWords({ stack: 'hyp', offset: 8, value: '0xffffffffffffffff', step: 1, count: 2, stride: 0 }, 64)).toEqual([{ offset: 8, value: 0n }]);
    // A huge count costs no more than the target's size.
    expect(corruptionWords({ stack: 'hyp', offset: 0, value: '0x1', count: Number.MAX_SAFE_INTEGER }, 65536)).toHaveLength(8192);
  });
});
