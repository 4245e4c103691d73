// Directed tests of the rest of hyp/ (docs/mutation.md): the host stage-2 snapshot, ptdump, the boot
// layout, the hypercall dispatch, the symbol table, and the nVHE stack unwinder with its simulated CPU,
// memory and layout. Each kills mutants the lockstep suites let survive: there the checker compares
// hyp with itself (ptdump of the copy against ptdump of the host stage-2), or the generators never
// build the situation (memory above 512 GiB, a 1 GiB machine, a misaligned array, a v5-format trace).
import { describe, expect, test } from 'vitest';
import { leafList, snapshotPgtable } from '../checker/snapshot/copy';
import { traceFunctions } from '../checker/unwinder/check';
import { runHyp } from '../checker/unwinder/run';
import { buildScenario } from '../checker/unwinder/scenario';
import { handle_host_hcall } from '../hyp/hyp-main';
import { PhysMem } from '../hyp/memory';
import * as pt from '../hyp/pgtable';
import { KvmPgtable, type WalkEntry } from '../hyp/pgtable';
import { Pkvm } from '../hyp/pkvm';
import { HypPool } from '../hyp/pool';
import { ptdump, ptdump_size } from '../hyp/ptdump';
import { GUEST_RESERVE_PAGES, hypLayout } from '../hyp/setup';
import { SNAP_MC_HEAD, SNAP_MC_NR_PAGES, SNAP_USED_PAGES_INDX, snapshotOf, type SnapshotStep } from '../hyp/snapshot';
import { NvheStacktrace } from '../hyp/stacktrace';
import { FrameRecordUnwinder, type StackInfo } from '../hyp/stacktrace-common';
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
import { HypVmemmap } from '../hyp/vmemmap';
import { DEFAULT_CONFIG, PA_PFNS, PTRS_PER_TABLE, type MachineConfig } from '../types/config';
import type { Call, UnwindArgs } from '../types/calls';
import { EINVAL, EPERM } from '../types/errno';

const hex = (n: number | bigint) => `0x${n.toString(16)}`;

describe('hyp-main: the hypercall dispatch', () => {
  test('the snapshot and hyp_panic have their own handlers: dispatching them through the table throws', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    const snapshot: Call = {
      call: '__pkvm_host_stage2_snapshot',
      args: { desc: 0, pgd: 0, pgd_pages: 0, mc: [], mc_nr_pages: 0, mc_tail: 0, used: 0, num_used_pages: 0, used_pages_indx: 0 },
    };
    const panic: Call = { call: 'hyp_panic', args: { scenario: 'recursive_death', mode: 'protected', page_size: 4096, depth: 0, seed: 1, corrupt: [] } };
    expect(() => handle_host_hcall(hyp, snapshot)).toThrow('handle_host_hcall: __pkvm_host_stage2_snapshot has its own handler');
    expect(() => handle_host_hcall(hyp, panic)).toThrow('handle_host_hcall: hyp_panic has its own handler');
    expect(handle_host_hcall(hyp, { call: 'host_access', args: { pfn: 0x40001, write: false } })).toBe(0);
  });
});

describe('setup: the carve-out', () => {
  // Several regions: the pools must be sized per region (the kernel's __hyp_pgtable_total_pages).
  const THREE: MachineConfig = { memory: [[0x40000, 0x800], [0x41000, 0x200], [0x42000, 0x300]], pageSize: 4096 };

  test('the carve-out is the top of the largest region: host PGD (2 pages), hyp PGD, host pool, hyp pool, guest reserve, back to back', () => {
    for (const config of [DEFAULT_CONFIG, THREE, { memory: [[0x40000, 0x200], [0x80000, 0x2000]], pageSize: 4096 } as MachineConfig]) {
      const l = hypLayout(config);
      const [first, nr] = [...config.memory].sort((a, b) => b[1] - a[1])[0];
      const [start, total] = l.carveout;
      expect(start + total).toBe(first + nr);
      expect(l.hostPgd).toBe(start);
      expect(l.hypPgd).toBe(start + 2);
      expect(l.hostPool[0]).toBe(start + 3);
      expect(l.hypPool[0]).toBe(l.hostPool[0] + l.hostPool[1]);
      expect(l.guestReserve[0]).toBe(l.hypPool[0] + l.hypPool[1]);
      expect(l.guestReserve).toEqual([start + total - GUEST_RESERVE_PAGES, GUEST_RESERVE_PAGES]);
      expect(l.hypPool[1]).toBe(l.hostPool[1]);
    }
  });

  test("each table pool covers every region at page granularity, as the kernel's __hyp_pgtable_total_pages provisions", () => {
    // The kernel's worst case for one region: DIV_ROUND_UP(nr, 512^i) table pages for each of 4 levels.
    const kernelPages = (nr: number) => [1, 2, 3, 4].reduce((n, i) => n + Math.ceil(nr / PTRS_PER_TABLE ** i), 0);
    for (const config of [DEFAULT_CONFIG, THREE]) {
      const l = hypLayout(config);
      const need = config.memory.reduce((n, [, nr]) => n + kernelPages(nr), 0);
      expect(l.hostPool[1]).toBeGreaterThanOrEqual(need);
    }
  });

  test('a largest region smaller than the carve-out itself is refused at boot', () => {
    expect(() => hypLayout({ memory: [[0x40000, 0x100]], pageSize: 4096 })).toThrow('the largest memory region (256 pages) is too small');
  });
});

describe('symbols: hyp functions and kallsyms', () => {
  test('an unknown hyp function is an error', () => {
    expect(() => hypFunction('no_such_function')).toThrow('no hyp function no_such_function');
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

// ---- ptdump ----

/** A table on its own memory, shaped like the host stage-2 (level 1 start, two PGD pages). */
function standaloneTable(): KvmPgtable {
  const mem = new PhysMem();
  const vmemmap = new HypVmemmap(mem, { ...DEFAULT_CONFIG, memory: [[0, 0x1000]] });
  const pool = new HypPool(mem, 'tables', 0x100, 0x100);
  const pgt = new KvmPgtable({ mem, vmemmap, mm_ops: { zalloc_page: () => pool.alloc(), put_page: (p) => pool.free(p) }, start_level: 1, pgd: 0x20, pgd_pages: 2, ia_pages: PA_PFNS });
  pgt.init();
  return pgt;
}

const NORMAL = pt.KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_NORMAL;
const DEVICE = pt.KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR_DEVICE;
const R = pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R;
const W = pt.KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W;
const XN = pt.KVM_PTE_LEAF_ATTR_HI_XN;
const SW0 = pt.KVM_PGTABLE_PROT_SW0;
const SW1 = pt.KVM_PGTABLE_PROT_SW1;

/** A valid leaf (block at levels 1 and 2, page at level 3) mapping `ia` to `out`. */
function mapLeaf(pgt: KvmPgtable, ia: number, level: number, out: number, lo: number, hi = 0): void {
  pgt.set_entry(ia, level, pt.kvm_init_valid_leaf_pte(out, { lo, hi }, level));
}
/** An ownership annotation: an invalid level-3 entry carrying the owner id in bits [9:2]. */
const annotate = (pgt: KvmPgtable, ia: number, owner: number) => pgt.set_entry(ia, pt.KVM_LEVEL_4K, pt.kvm_init_invalid_leaf_owner(owner));
const pa = (pfn: number) => `0x${(pfn * 4096).toString(16).padStart(16, '0')}`;

describe('ptdump', () => {
  test('sizes print in the largest unit that divides them', () => {
    expect([1, 3, 256, 512, 1536, 0x40000, 0x40000 + 512, 3 * 0x40000].map(ptdump_size)).toEqual(['4K', '12K', '1M', '2M', '6M', '1G', '1026M', '3G']);
  });

  test('an empty table dumps nothing', () => {
    expect(ptdump(standaloneTable())).toEqual([]);
  });

  test('one line per run: type, permissions, attributes, state or owner; runs need the same description, contiguous input and continuing output', () => {
    const pgt = standaloneTable();
    mapLeaf(pgt, 0, 1, 0, DEVICE | R | W, XN); // 1 GiB of MMIO
    mapLeaf(pgt, 0x40000, 2, 0x40000, NORMAL | R | W); // two 2 MiB blocks, output continuing: one run
    mapLeaf(pgt, 0x40200, 2, 0x40200, NORMAL | R | W);
    mapLeaf(pgt, 0x40400, 2, 0x80000, NORMAL | R | W); // input continues, output does not: a new run
    mapLeaf(pgt, 0x40800, 2, 0x80200, NORMAL | R | W); // output continues, input does not (a hole): a new run
    mapLeaf(pgt, 0x41000, 3, 0, NORMAL | R, SW0); // output from pfn 0, continuing: one run
    mapLeaf(pgt, 0x41001, 3, 1, NORMAL | R, SW0);
    mapLeaf(pgt, 0x41002, 3, 2, NORMAL | W, SW1 | XN);
    mapLeaf(pgt, 0x41003, 3, 3, (5 << 2) | R | W);
    mapLeaf(pgt, 0x41004, 3, 0, (5 << 2) | R | W); // same description, output back to pfn 0: a new run
    annotate(pgt, 0x41005, 1); // annotations have no output: contiguous ones with one owner merge
    annotate(pgt, 0x41006, 1);
    annotate(pgt, 0x41007, 2);
    mapLeaf(pgt, 0x41008, 3, 0x41008, NORMAL);
    expect(ptdump(pgt)).toEqual([
      `${pa(0)}-${pa(0x40000)}  1G  BLOCK  RWNX  DEVICE  OWNED`,
      `${pa(0x40000)}-${pa(0x40400)}  4M  BLOCK  RWx  NORMAL  OWNED`,
      `${pa(0x40400)}-${pa(0x40600)}  2M  BLOCK  RWx  NORMAL  OWNED`,
      `${pa(0x40800)}-${pa(0x40a00)}  2M  BLOCK  RWx  NORMAL  OWNED`,
      `${pa(0x41000)}-${pa(0x41002)}  8K  PAGE  R-x  NORMAL  SHARED_OWNED`,
      `${pa(0x41002)}-${pa(0x41003)}  4K  PAGE  -WNX  NORMAL  SHARED_BORROWED`,
      `${pa(0x41003)}-${pa(0x41004)}  4K  PAGE  RWx  MEMATTR5  OWNED`,
      `${pa(0x41004)}-${pa(0x41005)}  4K  PAGE  RWx  MEMATTR5  OWNED`,
      `${pa(0x41005)}-${pa(0x41007)}  8K  INVALID  ---  -  owner=hyp`,
      `${pa(0x41007)}-${pa(0x41008)}  4K  INVALID  ---  -  owner=id2`,
      `${pa(0x41008)}-${pa(0x41009)}  4K  PAGE  --x  NORMAL  OWNED`,
    ]);
    // A sub-range dumps only its own entries.
    expect(ptdump(pgt, 0x41001, 2)).toEqual([
      `${pa(0x41001)}-${pa(0x41002)}  4K  PAGE  R-x  NORMAL  SHARED_OWNED`,
      `${pa(0x41002)}-${pa(0x41003)}  4K  PAGE  -WNX  NORMAL  SHARED_BORROWED`,
    ]);
  });
});

// ---- the host stage-2 snapshot ----

/** What the host puts in the descriptor page (physical addresses; `mc` in list order). */
interface HostDesc {
  readonly desc: number;
  readonly pgd: number;
  readonly pgdPages: number;
  readonly mc: readonly number[];
  readonly used: number;
  readonly numUsed: number;
}

const P = 4096;

/** The host writes the descriptor and links the memcache (each page touched first, as the host would). */
function hostPrepare(hyp: Pkvm, d: HostDesc): void {
  const write = (pfn: number, off: number, v: number) => {
    expect(hyp.host_access(pfn, true)).toBe(0);
    hyp.mem.write64('host', pfn, off, BigInt(v));
  };
  const fields: [number, number][] = [[8, d.pgd], [16, d.pgdPages], [24, d.mc[0] ?? 0], [32, d.mc.length], [40, d.used], [48, d.numUsed], [56, 0]];
  for (const [off, v] of fields) write(Math.floor(d.desc / P), off, v);
  d.mc.forEach((p, i) => write(Math.floor(p / P), 0, d.mc[i + 1] ?? 0));
}

/** Host stage-2 tables below the PGD, by "level:addr": the entry pointing at each, and the table page. */
function tableEntries(pgt: KvmPgtable): Map<string, WalkEntry & { readonly child: number }> {
  const out = new Map<string, WalkEntry & { readonly child: number }>();
  pgt.walk(0, pgt.ia_pages, { tablePre: (e) => out.set(`${e.level}:${e.addr}`, { ...e, child: pt.kvm_pte_to_pfn(e.lo, e.hi) }) });
  return out;
}

/** Runs the snapshot with the hook recording stages (and, at teardown, the host stage-2 as copied). */
function snapshot(hyp: Pkvm, desc: number) {
  const s = snapshotOf(hyp);
  const stages: SnapshotStep[] = [];
  let hostTables = new Map<string, WalkEntry & { readonly child: number }>();
  let hostLeaves: string[] = [];
  s.snapshot_hook = (stage) => {
    stages.push(stage);
    if (stage.kind === 'teardown-begin') {
      hostTables = tableEntries(hyp.host_mmu);
      hostLeaves = leafList(hyp.host_mmu);
    }
  };
  try {
    const result = s.__pkvm_host_stage2_snapshot(desc);
    return { result, stages, hostTables, hostLeaves };
  } finally {
    s.snapshot_hook = null;
  }
}

const SMALL: HostDesc = {
  desc: 0x40010 * P,
  pgd: 0x40012 * P,
  pgdPages: 2,
  mc: Array.from({ length: 12 }, (_, i) => (0x40020 + i) * P),
  used: 0x40014 * P,
  numUsed: 1,
};

describe('host stage-2 snapshot', () => {
  test('runs without an observer installed', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    hostPrepare(hyp, SMALL);
    expect(snapshotOf(hyp).snapshot_hook).toBeNull();
    expect(snapshotOf(hyp).__pkvm_host_stage2_snapshot(SMALL.desc)).toBe(SMALL.pgd);
  });

  test('one snapshot state per hyp instance (so that a bug can replace its methods)', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    // (Compared with ===: a failing toBe would diff two whole machines.)
    expect(snapshotOf(hyp) === snapshotOf(hyp)).toBe(true);
    expect(snapshotOf(new Pkvm(DEFAULT_CONFIG)) === snapshotOf(hyp)).toBe(false);
  });

  test('the hook sees each donation (naming its pages), each copied table (naming its copy), then the teardown', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    hostPrepare(hyp, SMALL);
    const { result, stages, hostTables } = snapshot(hyp, SMALL.desc);
    expect(result).toBe(SMALL.pgd);
    const pfn = (x: number) => Math.floor(x / P);
    const donated = (first: number, nr: number): SnapshotStep => ({ kind: 'donated', pfn: pfn(first), nr });
    expect(stages.filter((s) => s.kind === 'donated')).toEqual([donated(SMALL.desc, 1), donated(SMALL.pgd, 2), ...SMALL.mc.map((p) => donated(p, 1)), donated(SMALL.used, 1)]);
    // Tables are copied into memcache pages popped from the head, in list order.
    const copied = stages.flatMap((s) => (s.kind === 'copied-table' ? [s.to] : []));
    expect(copied).toEqual(SMALL.mc.slice(0, hostTables.size).map(pfn));
    expect(stages.slice(-2).map((s) => s.kind)).toEqual(['teardown-begin', 'teardown-end']);
  });

  test('the descriptor comes back with the memcache left over (head, nr_pages) and used_pages_indx; the array lists the pages used', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    hostPrepare(hyp, SMALL);
    const { result, hostTables } = snapshot(hyp, SMALL.desc);
    expect(result).toBe(SMALL.pgd);
    const k = hostTables.size;
    expect(k).toBeGreaterThan(1);
    expect(k).toBeLessThan(SMALL.mc.length);
    const desc = Math.floor(SMALL.desc / P);
    const field = (off: number) => Number(hyp.mem.read64(desc, off));
    expect(field(SNAP_MC_HEAD)).toBe(SMALL.mc[k]);
    expect(field(SNAP_MC_NR_PAGES)).toBe(SMALL.mc.length - k);
    expect(field(SNAP_USED_PAGES_INDX)).toBe(k);
    const used = Math.floor(SMALL.used / P);
    expect(Array.from({ length: k + 1 }, (_, i) => Number(hyp.mem.read64(used, 8 * i)))).toEqual([...SMALL.mc.slice(0, k), 0]);
  });

  test('every memory write during the hypercall is made as hyp (so the write check sees each one)', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    hostPrepare(hyp, SMALL);
    const mem = hyp.mem;
    const write32 = mem.write32.bind(mem);
    const actors = new Map<string, number>();
    mem.write32 = (actor, pfn, word, value) => {
      actors.set(actor, (actors.get(actor) ?? 0) + 1);
      write32(actor, pfn, word, value);
    };
    expect(snapshot(hyp, SMALL.desc).result).toBe(SMALL.pgd);
    expect([...actors.keys()]).toEqual(['hyp']);
  });

  test('the copy reads the 512 entries of each table page and nothing outside them', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    hostPrepare(hyp, SMALL);
    const mem = hyp.mem;
    const read32 = mem.read32.bind(mem);
    const outside: string[] = [];
    mem.read32 = (pfn, word) => {
      if (word < 0 || word >= 1024) outside.push(`${hex(pfn)}[${word}]`);
      return read32(pfn, word);
    };
    expect(snapshot(hyp, SMALL.desc).result).toBe(SMALL.pgd);
    expect(outside).toEqual([]);
  });

  // Memory below 4 GiB and above 512 GiB: the host stage-2 has tables under both PGD pages, and its
  // table pages (in the carve-out, top of the larger region) have output addresses above 4 GiB.
  const HIGH: MachineConfig = { memory: [[0x40000, 0x1000], [0x8040000, 0x2000]], pageSize: 4096 };

  test('the copy re-points every table entry at its own table and keeps every other bit, under both PGD pages', () => {
    const hyp = new Pkvm(HIGH);
    expect(hyp.host_access(0x40005, false)).toBe(0); // a 2 MiB block at 0x40000 ...
    expect(hyp.__pkvm_host_donate_hyp(0x40205, 1)).toBe(0); // ... next to a table entry
    expect(hyp.host_access(0x8040005, true)).toBe(0); // the same above 512 GiB
    expect(hyp.__pkvm_host_donate_hyp(0x8040205, 1)).toBe(0);
    expect(hyp.host_access(0x9000005, false)).toBe(0); // a 1 GiB MMIO block in the second PGD page
    const d: HostDesc = { ...SMALL, mc: Array.from({ length: 16 }, (_, i) => (0x40800 + i) * P) };
    hostPrepare(hyp, d);
    const { result, hostTables, hostLeaves } = snapshot(hyp, d.desc);
    expect(result).toBe(d.pgd);
    const copy = snapshotPgtable(hyp, result);
    expect(leafList(copy)).toEqual(hostLeaves);
    expect(hostLeaves.some((l) => l.startsWith('0x8040000 '))).toBe(true);
    expect(hostLeaves.some((l) => l.startsWith('0x9000000 L1 '))).toBe(true);
    const copyTables = tableEntries(copy);
    expect([...copyTables.keys()].sort()).toEqual([...hostTables.keys()].sort());
    expect([...hostTables.keys()].some((k) => Number(k.split(':')[1]) >= 0x8000000)).toBe(true);
    const mcPfns = new Set(d.mc.map((p) => Math.floor(p / P)));
    for (const [key, h] of hostTables) {
      const c = copyTables.get(key)!;
      expect(mcPfns.has(c.child), `${key}: copy table ${hex(c.child)} is a memcache page`).toBe(true);
      expect([hex(c.lo & 0xfff), hex(c.hi & ~0xffff)], key).toEqual([hex(h.lo & 0xfff), hex(h.hi & ~0xffff)]);
    }
  });

  test('a misaligned used-pages array, PGD or memcache page is refused with -EPERM, and everything taken goes back', () => {
    for (const bad of [{ used: SMALL.used + 8 }, { pgd: SMALL.pgd + 16 }, { mc: [SMALL.mc[0], SMALL.mc[1] + 8] }]) {
      const hyp = new Pkvm(DEFAULT_CONFIG);
      const d = { ...SMALL, ...bad };
      hostPrepare(hyp, d);
      const { result, stages } = snapshot(hyp, d.desc);
      expect(result, JSON.stringify(bad)).toBe(-EPERM);
      expect(stages.slice(-2).map((s) => s.kind)).toEqual(['rollback-begin', 'rollback-end']);
      for (const p of [d.desc, d.pgd, d.pgd + P, ...d.mc, d.used]) expect(hyp.host_access(Math.floor(p / P), true), hex(p)).toBe(0);
    }
  });

  test('the setup error path and the teardown give back exactly the pages taken, each once', () => {
    const taken = (hyp: Pkvm) => {
      const s = snapshotOf(hyp);
      const give = s.snapshot_return.bind(s);
      const back: string[] = [];
      s.snapshot_return = (pfn, nr) => {
        back.push(`${hex(pfn)}+${nr}`);
        give(pfn, nr);
      };
      return back;
    };
    const pages = (d: HostDesc, mc: readonly number[], used: boolean) =>
      [`${hex(d.desc / P)}+1`, `${hex(d.pgd / P)}+2`, ...mc.map((p) => `${hex(p / P)}+1`), ...(used ? [`${hex(d.used / P)}+1`] : [])].sort();

    const ok = new Pkvm(DEFAULT_CONFIG);
    hostPrepare(ok, SMALL);
    const okBack = taken(ok);
    expect(snapshot(ok, SMALL.desc).result).toBe(SMALL.pgd);
    expect(okBack.sort()).toEqual(pages(SMALL, SMALL.mc, true));

    // The third memcache page is hyp's already: its donation fails, and it is not given "back".
    const fail = new Pkvm(DEFAULT_CONFIG);
    hostPrepare(fail, SMALL);
    expect(fail.__pkvm_host_donate_hyp(SMALL.mc[2] / P, 1)).toBe(0);
    const failBack = taken(fail);
    expect(snapshot(fail, SMALL.desc).result).toBe(-EPERM);
    expect(failBack.sort()).toEqual(pages(SMALL, SMALL.mc.slice(0, 2), false));
  });

  test('with memory at physical address 0, a descriptor at PA 0 is given back on a failed setup', () => {
    const hyp = new Pkvm({ memory: [[0, 0x1000]], pageSize: 4096 });
    const d: HostDesc = { desc: 0, pgd: 0x12 * P + 16, pgdPages: 2, mc: [0x20 * P], used: 0x14 * P, numUsed: 1 };
    hostPrepare(hyp, d);
    expect(snapshot(hyp, 0).result).toBe(-EPERM);
    expect(hyp.host_access(0, true)).toBe(0);
  });

  // The used-pages array holds 512 entries per page: a copy of more than 512 tables needs more than
  // 1 GiB of memory, with one page donated in each 2 MiB block. The call's pages sit in a second
  // region, in the next GiB.
  describe('more than 512 tables (a 1 GiB region and a second one)', () => {
    const BIG: MachineConfig = { memory: [[0x40000, 0x40000], [0x80000, 0x1000]], pageSize: 4096 };
    const MC = Array.from({ length: 560 }, (_, i) => (0x80400 + i) * P);
    const [DESC, USED] = [0x80010, 0x80014];
    function big(numUsed: number) {
      const hyp = new Pkvm(BIG);
      const [carveout] = hyp.layout.carveout;
      for (let pfn = 0x40007; pfn < carveout; pfn += 512) expect(hyp.__pkvm_host_donate_hyp(pfn, 1)).toBe(0);
      const d: HostDesc = { desc: DESC * P, pgd: 0x80012 * P, pgdPages: 2, mc: MC, used: USED * P, numUsed };
      hostPrepare(hyp, d);
      expect(hyp.host_access(USED + 1, true)).toBe(0);
      if (numUsed === 1) hyp.mem.write64('host', USED + 1, 0, 0x1234n); // the page after the array, the host's
      const { result, hostTables } = snapshot(hyp, d.desc);
      expect(result).toBe(d.pgd);
      expect(hostTables.size).toBeGreaterThan(PTRS_PER_TABLE);
      expect(hostTables.size).toBeLessThan(MC.length);
      return { hyp, k: hostTables.size };
    }
    const entry = (hyp: Pkvm, i: number) => Number(hyp.mem.read64(USED + Math.floor(i / 512), 8 * (i % 512)));

    test('a one-page array records the first 512 pages used and nothing past its end', () => {
      const { hyp } = big(1);
      expect(Array.from({ length: 512 }, (_, i) => entry(hyp, i))).toEqual(MC.slice(0, 512));
      expect(Number(hyp.mem.read64(DESC, SNAP_USED_PAGES_INDX))).toBe(512);
      expect(hyp.mem.read64(USED + 1, 0)).toBe(0x1234n);
      expect(hyp.mem.read64(USED + 1, 8)).toBe(0n);
    });

    test('a two-page array records every page used, entry 512 on in its second page', () => {
      const { hyp, k } = big(2);
      expect(Array.from({ length: k }, (_, i) => entry(hyp, i))).toEqual(MC.slice(0, k));
      expect(Number(hyp.mem.read64(DESC, SNAP_USED_PAGES_INDX))).toBe(k);
    });
  });
});

// ---- the nVHE stack unwinder ----

const layouts = (seeds: readonly number[], sizes: readonly number[] = PAGE_SIZES): NvheLayout[] => sizes.flatMap((p) => seeds.map((s) => nvheLayout(s, p)));
const SEEDS = Array.from({ length: 16 }, (_, i) => i + 1);
const TWO_MIB = 0x200000n;

describe('stacktrace-layout', () => {
  test('NVHE_STACKTRACE_SIZE holds N = 513, 1281, 4353 entries for 4K, 16K, 64K pages', () => {
    expect(PAGE_SIZES.map((p) => nvheStacktraceSize(p) / 8)).toEqual([513, 1281, 4353]);
    expect(PAGE_SIZES.map((p) => nvheLayout(1, p).stacktrace_entries)).toEqual([513, 1281, 4353]);
  });

  test('only 4K, 16K and 64K pages exist', () => {
    expect(() => nvheLayout(1, 8192)).toThrow('page size 8192 is not 4K, 16K or 64K');
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
    expect([f.name, f.message, f.space, f.addr, f.write]).toEqual(['MemoryFault', 'el2 write fault at 0x1230', 'el2', 0x1230n, true]);
    expect(new MemoryFault('host', 0xffn, false).message).toBe('host read fault at 0xff');
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
        expect(() => fresh.write64('el2', addr, 1n)).toThrow(`el2 write fault at ${hex(addr)}`);
      }
    }
    expect(mem.read64('el2', el2 + 56n)).toBe(7n);
  });
});

describe('stacktrace-common: the frame-record unwinder core', () => {
  const u = new FrameRecordUnwinder();
  test('on_stack: no stack at low 0; an empty range at the stack base is on it', () => {
    expect(u.on_stack(8n, 16n, 0n, 0x1000n)).toBe(false);
    expect(u.on_stack(0x1000n, 0n, 0x1000n, 0x2000n)).toBe(true);
    expect(u.on_stack(0x1ff0n, 16n, 0x1000n, 0x2000n)).toBe(true);
    expect(u.on_stack(0x1ff8n, 16n, 0x1000n, 0x2000n)).toBe(false);
  });

  test('unwind_init: no stack left yet, no previous record, previous stack unknown', () => {
    const s = u.kvm_nvhe_unwind_init(0x1000n, 0x2000n);
    expect(s).toEqual({ fp: 0x1000n, pc: 0x2000n, stacks_done: new Set(), prev_fp: 0n, prev_type: 'STACK_TYPE_UNKNOWN' });
  });

  test('a record that cannot be read ends the unwind with -EINVAL and leaves the state alone', () => {
    const stack: StackInfo = { low: 0x1000n, high: 0x2000n, type: 'STACK_TYPE_HYP' };
    const s = u.kvm_nvhe_unwind_init(0x1800n, 0x42n);
    expect(u.unwind_next_common(s, () => stack, () => null)).toBe(-EINVAL);
    expect([s.fp, s.pc, s.prev_fp]).toEqual([0x1800n, 0x42n, 0n]);
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

  test('kvm_stacktrace_info starts zeroed (per-CPU data), and the host finds no stack before EL2 fills it', () => {
    const { st } = cpuOf(l, false);
    expect(st.kvm_stacktrace_info).toEqual({ stack_base: 0n, overflow_stack_base: 0n, fp: 0n, pc: 0n });
    expect(st.host_on_accessible_stack(8n, 16n)).toBeNull();
  });

  test('the EL2 stacks: the hyp stack page below stack_hyp_va, the 4 KiB overflow stack', () => {
    const { st } = cpuOf(l, true);
    expect(st.stackinfo_get_hyp()).toEqual({ low: hypStackBase(l), high: l.stack_hyp_va, type: 'STACK_TYPE_HYP' });
    expect(st.stackinfo_get_overflow()).toEqual({ low: overflowStackBase(l), high: overflowStackBase(l) + 4096n, type: 'STACK_TYPE_OVERFLOW' });
  });

  test('the host bounds the stacks from what EL2 recorded, and translates only those two stacks', () => {
    const { st } = cpuOf(l, false);
    st.hyp_prepare_backtrace(0x10n, 0x20n);
    const ovf = overflowStackBase(l);
    const hyp = hypStackBase(l);
    expect(st.host_on_accessible_stack(ovf, 16n)).toEqual({ low: ovf, high: ovf + BigInt(OVERFLOW_STACK_SIZE), type: 'STACK_TYPE_OVERFLOW' });
    expect(st.host_on_accessible_stack(hyp + 16n, 16n)).toEqual({ low: hyp, high: l.stack_hyp_va, type: 'STACK_TYPE_HYP' });
    expect(st.kvm_nvhe_stack_kern_va(hyp + 16n, 'STACK_TYPE_HYP')).toBe(l.kvm_arm_hyp_stack_page + 16n);
    expect(st.kvm_nvhe_stack_kern_va(ovf + 16n, 'STACK_TYPE_OVERFLOW')).toBe(l.percpu_kern_va + BigInt(l.overflow_stack_off) + 16n);
    expect(st.kvm_nvhe_stack_kern_va(hyp + 16n, 'STACK_TYPE_UNKNOWN')).toBeNull();
  });

  test('a record on a stack the host cannot translate ends its unwind with -EINVAL, reading nothing', () => {
    const { st, memory } = cpuOf(l, false);
    st.hyp_prepare_backtrace(hypStackBase(l) + 32n, 0x20n);
    st.host_on_accessible_stack = (sp) => ({ low: sp, high: sp + 16n, type: 'STACK_TYPE_UNKNOWN' });
    let reads = 0;
    memory.mem.observer = () => reads++;
    expect(st.host_unwind_next(st.kvm_nvhe_unwind_init(hypStackBase(l) + 32n, 0x20n))).toBe(-EINVAL);
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
    expect(() => cpu.hyp_panic_tail()).toThrow('hyp has not panicked');
    cpu.__host_exit();
    cpu.bl('handle_trap');
    cpu.data_abort();
    expect(cpu.panic).not.toBeNull();
    expect(() => cpu.bl('handle_trap')).toThrow('hyp has panicked');
    expect(() => cpu.data_abort()).toThrow('hyp has panicked');
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
