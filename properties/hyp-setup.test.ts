// Boot and dispatch (hyp/setup.ts, hyp/hyp-main.ts): the carve-out's layout and pool sizes, and which
// calls the hypercall table dispatches.
import { describe, expect, test } from 'vitest';
import { handle_host_hcall } from '../hyp/hyp-main';
import { Pkvm } from '../hyp/pkvm';
import { GUEST_RESERVE_PAGES, hypLayout } from '../hyp/setup';
import type { Call } from '../types/calls';
import { DEFAULT_CONFIG, PTRS_PER_TABLE, type MachineConfig } from '../types/config';

describe('hyp-main: the hypercall dispatch', () => {
  test('the snapshot and hyp_panic have their own handlers: dispatching them through the table throws', () => {
    const hyp = new Pkvm(DEFAULT_CONFIG);
    const snapshot: Call = {
      call: '__pkvm_host_stage2_snapshot',
      args: { desc: 0, pgd: 0, pgd_pages: 0, mc: [], mc_nr_pages: 0, mc_tail: 0, used: 0, num_used_pages: 0, used_pages_indx: 0 },
    };
    const panic: Call = { call: 'hyp_panic', args: { scenario: 'recursive_death', mode: 'protected', page_size: 4096, depth: 0, seed: 1, corrupt: [] } };
    expect(() => handle_host_hcall(hyp, snapshot)).toThrow();
    expect(() => handle_host_hcall(hyp, panic)).toThrow();
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
    expect(() => hypLayout({ memory: [[0x40000, 0x100]], pageSize: 4096 })).toThrow();
  });
});
