// hyp_pool (hyp/pool.ts): the page allocator of hyp's table pools. The lockstep suites never run a
// pool dry nor check the order pages come back in.
import { describe, expect, test } from 'vitest';
import { PhysMem } from '../hyp/memory';
import { HypPool, PoolExhausted } from '../hyp/pool';

describe('hyp_pool', () => {
  test('hands out its range in order, zeroed, then refuses; reuses freed pages last-in first-out', () => {
    const m = new PhysMem();
    m.write32('host', 101, 3, 0xaaaa); // a fresh page with the host's old data
    const pool = new HypPool(m, 'test pool', 100, 3);
    expect(pool.contains(99)).toBe(false);
    expect(pool.contains(100)).toBe(true);
    expect(pool.contains(102)).toBe(true);
    expect(pool.contains(103)).toBe(false);
    expect(pool.inUse()).toEqual(new Set());
    expect(pool.alloc()).toBe(100);
    expect(pool.alloc()).toBe(101);
    expect(m.read32(101, 3)).toBe(0);
    expect(pool.tryAlloc()).toBe(102);
    expect(pool.tryAlloc()).toBe(-1);
    expect(() => pool.alloc()).toThrow(PoolExhausted);
    expect(pool.inUse()).toEqual(new Set([100, 101, 102]));
    pool.free(101);
    pool.free(100);
    expect(pool.inUse()).toEqual(new Set([102]));
    expect(pool.alloc()).toBe(100);
    expect(m.read32(100, 0)).toBe(0); // zeroed again when handed out
    expect(pool.inUse()).toEqual(new Set([100, 102]));
    expect(pool.alloc()).toBe(101);
    expect(pool.tryAlloc()).toBe(-1);
    pool.reset(200, 1);
    expect(pool.contains(100)).toBe(false);
    expect(pool.contains(200)).toBe(true);
    expect(pool.inUse()).toEqual(new Set());
    expect(pool.alloc()).toBe(200);
    expect(pool.tryAlloc()).toBe(-1);
  });

  test('an empty pool (the default) has nothing to give', () => {
    const m = new PhysMem();
    const pool = new HypPool(m, 'empty');
    expect(pool.tryAlloc()).toBe(-1);
    expect(pool.contains(0)).toBe(false);
    expect(pool.inUse().size).toBe(0);
  });
});
