// __pkvm_host_stage2_snapshot (hyp/snapshot.ts) directly. The lockstep suites compare hyp's copy with
// hyp's own host stage-2 (ptdump against ptdump) and never build some situations: memory above
// 512 GiB, more than 512 tables on a 1 GiB machine, a misaligned array, a descriptor at PA 0. These
// tests watch the internal steps through the hook, what is read and written, and what goes back.
import { describe, expect, test } from 'vitest';
import { leafList, snapshotPgtable } from '../checker/snapshot/copy';
import { PAGE_WORDS } from '../hyp/memory';
import * as pt from '../hyp/pgtable';
import type { KvmPgtable, WalkEntry } from '../hyp/pgtable';
import { Pkvm } from '../hyp/pkvm';
import {
  SNAP_MC_HEAD,
  SNAP_MC_NR_PAGES,
  SNAP_NUM_USED_PAGES,
  SNAP_PGD,
  SNAP_PGD_PAGES,
  SNAP_USED,
  SNAP_USED_PAGES_INDX,
  snapshotOf,
  type SnapshotStep,
} from '../hyp/snapshot';
import { DEFAULT_CONFIG, PTRS_PER_TABLE, type MachineConfig } from '../types/config';
import { EPERM } from '../types/errno';
import { PAGE_BYTES, hex } from './hyp-fixtures';

/** What the host puts in the descriptor page (physical addresses; `mc` in list order). */
interface HostDesc {
  readonly desc: number;
  readonly pgd: number;
  readonly pgdPages: number;
  readonly mc: readonly number[];
  readonly used: number;
  readonly numUsed: number;
}

const P = PAGE_BYTES;

/** The host writes the descriptor and links the memcache (each page touched first, as the host would). */
function hostPrepare(hyp: Pkvm, d: HostDesc): void {
  const write = (pfn: number, off: number, v: number) => {
    expect(hyp.host_access(pfn, true)).toBe(0);
    hyp.mem.write64('host', pfn, off, BigInt(v));
  };
  const fields: [number, number][] = [
    [SNAP_PGD, d.pgd],
    [SNAP_PGD_PAGES, d.pgdPages],
    [SNAP_MC_HEAD, d.mc[0] ?? 0],
    [SNAP_MC_NR_PAGES, d.mc.length],
    [SNAP_USED, d.used],
    [SNAP_NUM_USED_PAGES, d.numUsed],
    [SNAP_USED_PAGES_INDX, 0],
  ];
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
      if (word < 0 || word >= PAGE_WORDS) outside.push(`${hex(pfn)}[${word}]`);
      return read32(pfn, word);
    };
    expect(snapshot(hyp, SMALL.desc).result).toBe(SMALL.pgd);
    expect(outside).toEqual([]);
  });

  // Memory below 4 GiB and above 512 GiB: the host stage-2 has tables under both PGD pages, and its
  // table pages (in the carve-out, top of the larger region) have output addresses above 4 GiB.
  const HIGH: MachineConfig = { memory: [[0x40000, 0x1000], [0x8040000, 0x2000]], pageSize: 4096 };

  test('the copy points every table entry at its own copy of the table, under both PGD pages', () => {
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
      expect([pt.kvm_pte_table(c.lo, c.level), hex(c.lo & 0xfff), hex(c.hi & ~0xffff)], key).toEqual([true, hex(h.lo & 0xfff), hex(h.hi & ~0xffff)]);
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
