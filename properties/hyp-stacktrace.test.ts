// The nVHE stack unwinder's parts (hyp/stacktrace*.ts, hyp/symbols.ts) directly: the layout, the
// simulated memory and CPU, the unwinder core and both sides of the protected-mode buffer. The
// unwinder suite sees them only through the host's printed trace.
import { describe, expect, test } from 'vitest';
import { traceFunctions } from '../checker/unwinder/check';
import { runHyp } from '../checker/unwinder/run';
import { buildScenario } from '../checker/unwinder/scenario';
import { NvheStacktrace } from '../hyp/stacktrace';
import { FrameRecordUnwinder } from '../hyp/stacktrace-common';
import { NvheCpu, nvheCpuMemory } from '../hyp/stacktrace-cpu';
import {
  OVERFLOW_STACK_SIZE,
  PAGE_OFFSET,
  PAGE_SIZES,
  PHYS_OFFSET,
  hostCtxtHypVa,
  hypPa,
  hypStackBase,
  hypTextVa,
  nvheLayout,
  nvheStacktraceSize,
  overflowStackBase,
  physToKimg,
  type NvheLayout,
} from '../hyp/stacktrace-layout';
import { MemoryFault, StackMemory } from '../hyp/stacktrace-memory';
import { KIMAGE_VADDR, Kallsyms, POOL_FUNCTIONS, hex016, hypFunction, type KernelSymbol } from '../hyp/symbols';
import type { UnwindArgs } from '../types/calls';
import { EINVAL } from '../types/errno';
import { hex } from './hyp-fixtures';

describe('symbols: hyp functions and kallsyms', () => {
  test('an unknown hyp function is an error', () => {
    expect(() => hypFunction('no_such_function')).toThrow();
    expect(hypFunction('hyp_panic').name).toBe('hyp_panic');
  });

  test('kallsyms finds the symbol containing an address, whatever order the symbols came in', () => {
    const a: KernelSymbol = { name: 'a', start: 0x1000n, size: 0x100n };
    const b: KernelSymbol = { name: 'b', start: 0x2000n, size: 0x10n };
    const c: KernelSymbol = { name: 'c', start: 0x1800n, size: 0x80n };
    const d: KernelSymbol = { name: 'd', start: 0x1900n, size: 0x40n };
    for (const order of [[b, c, a, d], [d, b, a, c], [a, c, d, b]]) {
      const k = new Kallsyms(order);
      for (const s of [a, b, c, d]) {
        expect(k.kallsyms_lookup(s.start)?.name, `${s.name} start`).toBe(s.name);
        expect(k.kallsyms_lookup(s.start + s.size - 1n)?.name, `${s.name} last byte`).toBe(s.name);
        expect(k.kallsyms_lookup(s.start + s.size), `${s.name} end`).toBeNull(); // gaps follow every symbol
        expect(k.kallsyms_lookup(s.start - 1n), `before ${s.name}`).toBeNull();
      }
    }
  });

  test("%016lx pads to 16 hex digits", () => {
    expect(hex016(0x1234n)).toBe('0000000000001234');
    expect(hex016(0n)).toBe('0000000000000000');
    expect(hex016(0xffff800008000000n)).toBe('ffff800008000000');
  });
});

const layouts = (seeds: readonly number[], sizes: readonly number[] = PAGE_SIZES): NvheLayout[] => sizes.flatMap((p) => seeds.map((s) => nvheLayout(s, p)));
const SEEDS = Array.from({ length: 16 }, (_, i) => i + 1);
const TWO_MIB = 0x200000n;

describe('stacktrace-layout', () => {
  test('NVHE_STACKTRACE_SIZE holds N = 513, 1281, 4353 entries for 4K, 16K, 64K pages', () => {
    expect(PAGE_SIZES.map((p) => nvheStacktraceSize(p) / 8)).toEqual([513, 1281, 4353]);
    expect(PAGE_SIZES.map((p) => nvheLayout(1, p).stacktrace_entries)).toEqual([513, 1281, 4353]);
  });

  test('only 4K, 16K and 64K pages exist', () => {
    expect(() => nvheLayout(1, 8192)).toThrow();
  });

  test('KASLR, the image, the hyp stack and the per-CPU area are placed where the kernel puts them', () => {
    for (const l of layouts(SEEDS)) {
      const P = BigInt(l.page_size);
      expect(l.kaslr_offset > 0n && l.kaslr_offset % TWO_MIB === 0n).toBe(true);
      expect(l.image_pa >= PHYS_OFFSET && l.image_pa % TWO_MIB === 0n).toBe(true);
      expect(physToKimg(l, l.image_pa)).toBe(KIMAGE_VADDR + l.kaslr_offset);
      // The hyp stack lives in hyp's private VA range: the upper half of the tag's range.
      expect(l.stack_hyp_va >> 39n).toBe(l.hyp_va_tag);
      expect((hypStackBase(l) >> 38n) & 1n).toBe(1n);
      // Its page has the PAGE_SHIFT bit of its addresses set, the guard page below it clear.
      expect(l.stack_hyp_va % P).toBe(0n);
      expect((hypStackBase(l) >> BigInt(l.page_shift)) & 1n).toBe(1n);
      expect(((hypStackBase(l) - 1n) >> BigInt(l.page_shift)) & 1n).toBe(0n);
      // The host's aliases are linear-map addresses of the same physical pages.
      expect(l.percpu_kern_va).toBe(PAGE_OFFSET + (hypPa(l.percpu_hyp_va) - PHYS_OFFSET));
      expect(l.kvm_arm_hyp_stack_page >= PAGE_OFFSET && l.kvm_arm_hyp_stack_page % P === 0n).toBe(true);
      // The host context is a per-CPU variable.
      const ctxt = hostCtxtHypVa(l);
      expect(ctxt >= l.percpu_hyp_va && ctxt + 8n <= l.percpu_hyp_va + BigInt(l.percpu_size)).toBe(true);
    }
  });

  test('every randomised field takes several values over seeds; about half the layouts sign return addresses', () => {
    for (const p of PAGE_SIZES) {
      const ls = layouts(SEEDS, [p]);
      const fields: (keyof NvheLayout)[] = ['kaslr_offset', 'image_pa', 'hyp_va_tag', 'stack_hyp_va', 'kvm_arm_hyp_stack_page', 'percpu_hyp_va', 'overflow_stack_off', 'contents_seed'];
      for (const f of fields) expect(new Set(ls.map((l) => l[f])).size, f).toBeGreaterThan(SEEDS.length / 2);
      // Placement inside the ranges too, not only through the tag: the stack in the private range,
      // the per-CPU area in physical memory.
      const placed = { stack: ls.map((l) => l.stack_hyp_va % (1n << 38n)), percpu: ls.map((l) => hypPa(l.percpu_hyp_va)) };
      for (const [what, vs] of Object.entries(placed)) expect(new Set(vs).size, what).toBeGreaterThan(SEEDS.length / 2);
      const keys = ls.map((l) => l.pac_key);
      expect(keys.filter((k) => k === 0).length).toBeGreaterThan(0);
      expect(new Set(keys.filter((k) => k !== 0)).size).toBeGreaterThan(1);
    }
  });
});

describe('stacktrace-memory', () => {
  const el2 = 0x8000_0000_0000n;
  test('a fault says who, where, read or write', () => {
    const f = new MemoryFault('el2', 0x1230n, true);
    expect([f.space, f.addr, f.write]).toEqual(['el2', 0x1230n, true]);
    expect(new MemoryFault('host', 0xffn, false).write).toBe(false);
  });

  test('EL2 and the host are separate address spaces, even at the same VA', () => {
    const mem = new StackMemory();
    const a = new Uint8Array(64);
    const b = new Uint8Array(64);
    mem.map('el2', el2, a);
    mem.map('host', el2, b);
    mem.write64('el2', el2 + 8n, 0x1111n);
    mem.write64('host', el2 + 8n, 0x2222n);
    expect(mem.read64('el2', el2 + 8n)).toBe(0x1111n);
    expect(mem.read64('host', el2 + 8n)).toBe(0x2222n);
    expect(mem.read64('el2', el2 + 8n)).toBe(0x1111n);
    const only = new StackMemory();
    only.map('el2', el2, a);
    expect(only.read64('el2', el2 + 8n)).toBe(0x1111n);
    expect(() => only.read64('host', el2 + 8n)).toThrow(MemoryFault);
  });

  test("a mapping's last word is readable; a word straddling its end or past it faults, read or write", () => {
    const mem = new StackMemory();
    mem.map('el2', el2, new Uint8Array(64));
    mem.write64('el2', el2 + 56n, 7n);
    for (const warm of [false, true]) {
      const fresh = new StackMemory();
      fresh.map('el2', el2, new Uint8Array(64));
      if (warm) fresh.read64('el2', el2); // the last mapping used is tried first
      expect(fresh.read64('el2', el2 + 56n)).toBe(0n);
      for (const addr of [el2 + 60n, el2 + 64n, el2 - 8n, el2 - 4n]) {
        let fault: unknown = null;
        try {
          fresh.read64('el2', addr);
        } catch (e) {
          fault = e;
        }
        expect(fault, hex(addr)).toBeInstanceOf(MemoryFault);
        expect((fault as MemoryFault).write).toBe(false);
        expect(() => fresh.write64('el2', addr, 1n)).toThrow(MemoryFault);
      }
    }
    expect(mem.read64('el2', el2 + 56n)).toBe(7n);
  });
});

describe('stacktrace-common: the frame-record unwinder core (common.h, 6.12)', () => {
  const u = new FrameRecordUnwinder();
  const on = (sp: bigint, size: bigint, low: bigint, high: bigint) => u.stackinfo_on_stack({ low, high }, sp, size);
  /** Words of a toy memory: each record at fp holds [fp + 0x100, fp + 1]. */
  const read = (addr: bigint) => (addr % 16n === 0n ? addr + 0x100n : addr - 7n);
  const A = () => ({ low: 0x1000n, high: 0x2000n });
  const B = () => ({ low: 0x4000n, high: 0x5000n });

  test('stackinfo_on_stack: no stack at low 0; an empty range at the stack base is on it; no wrap', () => {
    expect(on(8n, 16n, 0n, 0x1000n)).toBe(false);
    expect(on(0x1000n, 0n, 0x1000n, 0x2000n)).toBe(true);
    expect(on(0x1ff0n, 16n, 0x1000n, 0x2000n)).toBe(true);
    expect(on(0x1ff8n, 16n, 0x1000n, 0x2000n)).toBe(false);
    expect(on((1n << 64n) - 8n, 16n, 0x1000n, (1n << 64n) - 1n)).toBe(false);
  });

  test('kvm_nvhe_unwind_init: no current stack, every stack listed', () => {
    const s = u.kvm_nvhe_unwind_init([A(), B()], 0x1000n, 0x2000n);
    expect(s).toEqual({ fp: 0x1000n, pc: 0x2000n, stack: { low: 0n, high: 0n }, stacks: [A(), B()], nr_stacks: 2 });
  });

  test('a record is consumed: the stack then starts at its end, so the next one must be 16 bytes higher', () => {
    const s = u.kvm_nvhe_unwind_init([A(), B()], 0x1800n, 0x42n);
    expect(u.unwind_next_frame_record(s, read)).toBe(0);
    expect(s).toMatchObject({ fp: 0x1900n, pc: 0x1801n, stack: { low: 0x1810n, high: 0x2000n }, stacks: [{ low: 0n, high: 0n }, B()] });
    for (const [fp, err] of [[0x1808n, -EINVAL], [0x1800n, -EINVAL], [0x17f0n, -EINVAL], [0x1810n, 0]] as const) {
      const t = u.kvm_nvhe_unwind_init([A(), B()], 0x1800n, 0x42n);
      u.unwind_next_frame_record(t, read);
      t.fp = fp;
      expect(u.unwind_next_frame_record(t, read), `0x${fp.toString(16)}`).toBe(err);
    }
  });

  test('a transition makes the other stack current and removes it from the list: no stack is entered twice', () => {
    const s = u.kvm_nvhe_unwind_init([A(), B()], 0x1800n, 0x42n);
    expect(u.unwind_next_frame_record(s, read)).toBe(0);
    s.fp = 0x4000n;
    expect(u.unwind_next_frame_record(s, read)).toBe(0);
    expect(s.stack).toEqual({ low: 0x4010n, high: 0x5000n });
    expect(s.stacks).toEqual([{ low: 0n, high: 0n }, { low: 0n, high: 0n }]);
    s.fp = 0x1f00n;
    expect(u.unwind_next_frame_record(s, read)).toBe(-EINVAL);
    expect([s.fp, s.pc]).toEqual([0x1f00n, 0x4001n]);
  });

  test('a misaligned or unlisted fp ends the unwind with -EINVAL, reading nothing', () => {
    let reads = 0;
    const counted = (addr: bigint) => (reads++, read(addr));
    for (const fp of [0x1804n, 0x3000n, 0x1ff8n]) expect(u.unwind_next_frame_record(u.kvm_nvhe_unwind_init([A(), B()], fp, 0x42n), counted)).toBe(-EINVAL);
    expect(reads).toBe(0);
  });
});

/** One CPU of a layout, with its memory and unwinder. */
function cpuOf(l: NvheLayout, isProtected: boolean, format: 'upstream' | 'v5' = 'upstream') {
  const memory = nvheCpuMemory(l, isProtected);
  const st = new NvheStacktrace(l, memory.mem, { protected: isProtected, format });
  return { memory, st, cpu: new NvheCpu(l, memory, st) };
}

describe('stacktrace: EL2 and host sides', () => {
  const l = nvheLayout(7, 4096);

  test('kvm_stacktrace_info starts zeroed (per-CPU data), and the host translates nothing before EL2 fills it', () => {
    const { st } = cpuOf(l, false);
    expect(st.kvm_stacktrace_info).toEqual({ stack_base: 0n, overflow_stack_base: 0n, fp: 0n, pc: 0n });
    expect(st.kvm_nvhe_stack_kern_va(8n, 16n)).toBeNull();
  });

  test('the EL2 stacks: the hyp stack page below stack_hyp_va, the 4 KiB overflow stack', () => {
    const { st } = cpuOf(l, true);
    expect(st.stackinfo_get_hyp()).toEqual({ low: hypStackBase(l), high: l.stack_hyp_va });
    expect(st.stackinfo_get_overflow()).toEqual({ low: overflowStackBase(l), high: overflowStackBase(l) + 4096n });
  });

  test('the host bounds the stacks from what EL2 recorded, and translates only those two stacks', () => {
    const { st } = cpuOf(l, false);
    st.hyp_prepare_backtrace(0x10n, 0x20n);
    const ovf = overflowStackBase(l);
    const hyp = hypStackBase(l);
    expect(st.host_stackinfo_get_overflow()).toEqual({ low: ovf, high: ovf + BigInt(OVERFLOW_STACK_SIZE) });
    expect(st.host_stackinfo_get_hyp()).toEqual({ low: hyp, high: l.stack_hyp_va });
    expect(st.kvm_nvhe_stack_kern_va(hyp + 16n, 16n)).toBe(l.kvm_arm_hyp_stack_page + 16n);
    expect(st.kvm_nvhe_stack_kern_va(ovf + 16n, 16n)).toBe(l.percpu_kern_va + BigInt(l.overflow_stack_off) + 16n);
    expect(st.kvm_nvhe_stack_kern_va(l.stack_hyp_va - 8n, 16n)).toBeNull();
    expect(st.kvm_nvhe_stack_kern_va(hyp - 16n, 16n)).toBeNull();
  });

  test('a record on neither stack ends the host unwind with -EINVAL, reading nothing', () => {
    const { st, memory } = cpuOf(l, false);
    st.hyp_prepare_backtrace(hypStackBase(l) - 32n, 0x20n);
    let reads = 0;
    memory.mem.observer = () => reads++;
    const stacks = [st.stackinfo_get_overflow_kern_va(), st.stackinfo_get_hyp_kern_va()];
    const state = st.kvm_nvhe_unwind_init(stacks, hypStackBase(l) - 32n, 0x20n);
    expect(st.host_unwind_next(state)).toBe(-EINVAL);
    expect(state.fp).toBe(hypStackBase(l) - 32n);
    expect(reads).toBe(0);
  });

  test('the saver needs two free slots: at N - 2 it stores the entry and a 0, at N - 1 it refuses', () => {
    const { st, memory } = cpuOf(l, true);
    const N = l.stacktrace_entries;
    const idx = { value: N - 2 };
    expect(st.pkvm_save_backtrace_entry(idx, 0xabcn)).toBe(true);
    expect(idx.value).toBe(N - 1);
    const buf = (i: number) => new DataView(memory.percpu.buffer).getBigUint64(l.pkvm_stacktrace_off + 8 * i, true);
    expect([buf(N - 2), buf(N - 1)]).toEqual([0xabcn, 0n]);
    expect(st.pkvm_save_backtrace_entry(idx, 0xdefn)).toBe(false);
    expect(idx.value).toBe(N - 1);
    expect(buf(N - 1)).toBe(0n);
  });

  test('the v4/v5 format names the mode in its header and footer', () => {
    for (const isProtected of [true, false]) {
      const { st } = cpuOf(l, isProtected, 'v5');
      st.kvm_nvhe_dump_backtrace_start();
      st.kvm_nvhe_dump_backtrace_end();
      const m = isProtected ? 'Protected' : 'Non-protected';
      expect(st.log).toEqual([`${m} nVHE HYP call trace:`, `---- End of ${m} nVHE HYP call trace ----`]);
    }
    const { st } = cpuOf(l, true, 'upstream');
    st.kvm_nvhe_dump_backtrace_start();
    st.kvm_nvhe_dump_backtrace_end();
    expect(st.log).toEqual(['nVHE call trace:', '---[ end nVHE call trace ]---']);
  });
});

describe('stacktrace-cpu: the simulated EL2 CPU', () => {
  const args = (scenario: string, mode: 'protected' | 'nonprotected', depth: number, seed = 3): UnwindArgs => ({ scenario, mode, page_size: 4096, depth, seed, corrupt: [] });

  test("pKVM keeps hyp's stack page from the host; without protection the host reads it through its alias", () => {
    const l = nvheLayout(5, 4096);
    const prot = nvheCpuMemory(l, true);
    prot.mem.write64('el2', hypStackBase(l), 0x77n);
    expect(() => prot.mem.read64('host', l.kvm_arm_hyp_stack_page)).toThrow(MemoryFault);
    const open = nvheCpuMemory(l, false);
    open.mem.write64('el2', hypStackBase(l), 0x77n);
    expect(open.mem.read64('host', l.kvm_arm_hyp_stack_page)).toBe(0x77n);
  });

  test('a data abort on the hyp stack is no overflow: no hyp_panic_bad_stack, every record on the hyp stack', () => {
    const sc = buildScenario(args('call_chain', 'nonprotected', 3));
    expect(sc.panic.overflow).toBe(false);
    expect(sc.cpu.records.every((r) => r.stack === 'hyp')).toBe(true);
    // One record per prologue, in call order: the chain below __host_exit, then hyp_panic.
    expect(sc.cpu.records.map((r) => r.fn)).toEqual([...sc.panic.call_stack.slice(1), 'hyp_panic']);
    const names = traceFunctions(runHyp(sc.args, []).lines);
    expect(names.slice(0, 2)).toEqual(['hyp_panic', sc.panic.call_stack[sc.panic.call_stack.length - 1]]);
    expect(names).not.toContain('hyp_panic_bad_stack');
  });

  test('an overflow moves to the overflow stack: hyp_panic_bad_stack and hyp_panic push their records there', () => {
    const sc = buildScenario(args('recursive_death', 'protected', 0));
    expect(sc.panic.overflow).toBe(true);
    const recs = sc.cpu.records;
    expect(recs.slice(-2).map((r) => [r.fn, r.stack])).toEqual([['hyp_panic_bad_stack', 'overflow'], ['hyp_panic', 'overflow']]);
    expect(recs.slice(0, -2).every((r) => r.stack === 'hyp')).toBe(true);
  });

  test('a panicked CPU runs nothing more, and the panic tail needs a panic', () => {
    const l = nvheLayout(5, 4096);
    const { cpu } = cpuOf(l, true);
    expect(() => cpu.hyp_panic_tail()).toThrow();
    cpu.__host_exit();
    cpu.bl('handle_trap');
    cpu.data_abort();
    expect(cpu.panic).not.toBeNull();
    expect(() => cpu.bl('handle_trap')).toThrow();
    expect(() => cpu.data_abort()).toThrow();
  });

  test('only a data abort (MemoryFault) in a prologue is taken as an exception; other errors propagate', () => {
    const l = nvheLayout(5, 4096);
    const { cpu, memory } = cpuOf(l, true);
    cpu.__host_exit();
    memory.mem.observer = () => {
      throw new Error('observer says no');
    };
    expect(() => cpu.bl('handle_trap')).toThrow('observer says no');
    expect(cpu.panic).toBeNull();
  });

  test('pointer authentication: no key signs nothing; a key puts a code in bits [54:48] and nowhere else', () => {
    const ls = layouts(SEEDS, [4096]);
    const off = ls.find((l) => l.pac_key === 0)!;
    const on = ls.find((l) => l.pac_key !== 0)!;
    const lrs = POOL_FUNCTIONS.map((f) => hypTextVa(on, f.link + BigInt(f.ret)));
    const sp = hypStackBase(on) + 0x100n;
    const plain = cpuOf(off, true).cpu;
    for (const lr of lrs) expect(plain.sign(lr, sp)).toBe(lr);
    const signer = cpuOf(on, true).cpu;
    const signed = lrs.map((lr) => signer.sign(lr, sp));
    const PAC = 0x7fn << 48n;
    signed.forEach((s, i) => expect(s & ~PAC).toBe(lrs[i]));
    expect(signed.filter((s, i) => s !== lrs[i]).length).toBeGreaterThan(lrs.length / 2);
  });

  test('stale stack contents: a chain of rising frame records over the whole page, pool return addresses, stray words between', () => {
    const PAC = 0x7fn << 48n;
    const bad: string[] = [];
    let stray = 0;
    for (const l of layouts([1, 2, 3, 4, 5, 6, 7, 8])) {
      const { cpu, memory } = cpuOf(l, true);
      cpu.fill_stale_memory();
      const P = l.page_size;
      const base = hypStackBase(l);
      const page = new DataView(memory.hyp_stack_page.buffer);
      const rets = new Map(POOL_FUNCTIONS.map((f) => [hypTextVa(l, f.link + BigInt(f.ret)), f.name]));
      const strides = new Set<number>();
      const fns = new Set<string>();
      for (let off = 0; off + 16 <= P && bad.length === 0; ) {
        const stride = Number(page.getBigUint64(off, true) - base) - off;
        const fn = rets.get(page.getBigUint64(off + 8, true) & ~PAC);
        if (stride % 16 !== 0 || stride < 16 || stride > 96) bad.push(`${P}/${l.kaslr_offset}: the record at ${off} points ${stride} bytes up`);
        if (fn === undefined) bad.push(`${P}/${l.kaslr_offset}: the lr at ${off + 8} is no pool function's return address`);
        else fns.add(fn);
        strides.add(stride);
        for (let w = off + 16; w < Math.min(off + stride, P); w += 8) if (page.getBigUint64(w, true) !== 0n) stray++;
        off += stride;
      }
      if (strides.size < 4 || fns.size < 4) bad.push(`${P}/${l.kaslr_offset}: ${strides.size} strides, ${fns.size} functions`);
      // The per-CPU variables around the overflow stack and the stacktrace buffer hold live data.
      const percpu = new DataView(memory.percpu.buffer);
      for (const [from, to] of [[0, l.overflow_stack_off], [l.host_ctxt_off, l.percpu_size]])
        for (let o = from; o + 8 <= to; o += 8) if (percpu.getBigUint64(o, true) === 0n) bad.push(`${P}/${l.kaslr_offset}: per-CPU word at ${o} is 0`);
    }
    expect(bad).toEqual([]);
    expect(stray).toBeGreaterThan(0);
  });
});
