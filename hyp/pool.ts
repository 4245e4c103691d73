// hyp_pool: page allocator for page-table pages, over a range of hyp-owned pages. Fresh pages are
// handed out in order (zeroed first: donated pages may hold the host's old data); freed pages are
// kept on a list linked through their first word, like the kernel's memcache. Pages must be zero
// when freed (empty tables are). All of its state lives in journaled cells.
import type { PhysMem } from './memory';

export class PoolExhausted extends Error {
  constructor(name: string) {
    super(`hyp pool "${name}" is exhausted (a harness limit, not a property failure)`);
    this.name = 'PoolExhausted';
  }
}

const HEAD = 0; // free-list head as pfn + 1 (0 = empty)
const NEXT = 1; // next never-used pfn
const END = 2;
const FIRST = 3;

export class HypPool {
  private readonly cells: number;

  constructor(
    private readonly mem: PhysMem,
    readonly name: string,
    first = 0,
    nr = 0,
  ) {
    this.cells = mem.allocCells(4);
    this.reset(first, nr);
  }

  /** Hands the pool a new range of pages (and forgets the old one). */
  reset(first: number, nr: number): void {
    this.mem.setCell(this.cells + HEAD, 0);
    this.mem.setCell(this.cells + NEXT, first);
    this.mem.setCell(this.cells + END, first + nr);
    this.mem.setCell(this.cells + FIRST, first);
  }

  contains(pfn: number): boolean {
    return pfn >= this.mem.cell(this.cells + FIRST) && pfn < this.mem.cell(this.cells + END);
  }

  /** A zeroed page, or -1 when the pool is empty. */
  tryAlloc(): number {
    const head = this.mem.cell(this.cells + HEAD);
    if (head !== 0) {
      const pfn = head - 1;
      this.mem.setCell(this.cells + HEAD, this.mem.read32(pfn, 0));
      this.mem.write32('hyp', pfn, 0, 0);
      return pfn;
    }
    const next = this.mem.cell(this.cells + NEXT);
    if (next >= this.mem.cell(this.cells + END)) return -1;
    this.mem.setCell(this.cells + NEXT, next + 1);
    this.clear_fresh_page(next);
    return next;
  }

  /**
   * A page handed out for the first time holds what its last owner left there (a VM's pool is made
   * of pages the host donated, with the host's data in them): it is zeroed, as the kernel's hyp_pool
   * zeroes every page it admits.
   */
  clear_fresh_page(pfn: number): void {
    this.mem.zero_page('hyp', pfn);
  }

  alloc(): number {
    const pfn = this.tryAlloc();
    if (pfn < 0) throw new PoolExhausted(this.name);
    return pfn;
  }

  free(pfn: number): void {
    this.mem.write32('hyp', pfn, 0, this.mem.cell(this.cells + HEAD));
    this.mem.setCell(this.cells + HEAD, pfn + 1);
  }

  /** Pages handed out and not returned (for conservation checks). */
  inUse(): Set<number> {
    const used = new Set<number>();
    for (let p = this.mem.cell(this.cells + FIRST); p < this.mem.cell(this.cells + NEXT); p++) used.add(p);
    for (let head = this.mem.cell(this.cells + HEAD); head !== 0; head = this.mem.read32(head - 1, 0)) used.delete(head - 1);
    return used;
  }
}
