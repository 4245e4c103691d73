// Simulated physical memory: 4 KiB pages of 32-bit words, allocated lazily (an untouched page reads
// as zero), plus a store of journaled 32-bit "cells" for hyp's own data (hyp_vmemmap, pool heads).
// Every write is journaled (undo log) so that a caller can roll back or compare against a mark, and
// every write names its actor: the pfns hyp wrote are logged for the "hyp writes only pages it
// owns" check.

export type Actor = 'host' | 'hyp';

/** 32-bit words per page. */
export const PAGE_WORDS = 1024;

/**
 * A journal address names one journaled 32-bit location: word `word` of page `pfn` is
 * pfn * PAGE_WORDS + word (>= 0), hyp data cell `i` is -(i + 1). diffSince reports locations this
 * way; decode them with these functions, never by hand.
 */
export type JournalAddress = number;
export const wordAddress = (pfn: number, word: number): JournalAddress => pfn * PAGE_WORDS + word;
export const cellAddress = (cell: number): JournalAddress => -(cell + 1);
export const isCellAddress = (addr: JournalAddress): boolean => addr < 0;
/** The page of a word address. */
export const addressPfn = (addr: JournalAddress): number => Math.floor(addr / PAGE_WORDS);
/** The word (in its page) of a word address. */
export const addressWord = (addr: JournalAddress): number => addr % PAGE_WORDS;
/** The cell of a cell address. */
export const addressCell = (addr: JournalAddress): number => -addr - 1;

const ZERO_PAGE = new Uint32Array(PAGE_WORDS);

/**
 * A word index must lie inside its page: a typed array would silently read undefined past the end
 * and drop the write (while the journal logged it against the next page), so an access that runs
 * off a page is a loud error instead.
 */
function checkWord(word: number): void {
  if (word >>> 0 !== word || word >= PAGE_WORDS) throw new RangeError(`word ${word} is outside a page (0..${PAGE_WORDS - 1})`);
}

export class PhysMem {
  private readonly pages = new Map<number, Uint32Array>();
  /** Journaled cells (journal address cellAddress(index)). */
  private cells: Int32Array = new Int32Array(1024);
  private cellsUsed = 0;
  /** Undo journal: pairs (journal address, old value). */
  private journal = new Float64Array(4096);
  private jlen = 0;
  /**
   * Called before every hyp write with the pfn written: the checker installs it to check that hyp
   * writes only pages hyp owns at that moment.
   */
  onHypWrite: ((pfn: number) => void) | null = null;
  /**
   * Called before hyp reads data the host provided (a descriptor field, a memcache link) with the
   * pfn read: the checker installs it to check that hyp reads such data only from pages it owns.
   */
  onHypRead: ((pfn: number) => void) | null = null;

  /** Reserves `n` zeroed cells and returns the index of the first. */
  allocCells(n: number): number {
    const base = this.cellsUsed;
    this.cellsUsed += n;
    if (this.cellsUsed > this.cells.length) {
      const bigger = new Int32Array(Math.max(this.cellsUsed, this.cells.length * 2));
      bigger.set(this.cells);
      this.cells = bigger;
    }
    return base;
  }

  cell(i: number): number {
    return this.cells[i];
  }

  setCell(i: number, v: number): void {
    this.log(cellAddress(i), this.cells[i]);
    this.cells[i] = v;
  }

  /** A page's words for reading (a shared zero page when it was never written); never write to it. */
  pageView(pfn: number): Uint32Array {
    return this.pages.get(pfn) ?? ZERO_PAGE;
  }

  read32(pfn: number, word: number): number {
    checkWord(word);
    const p = this.pages.get(pfn);
    return p === undefined ? 0 : p[word];
  }

  write32(actor: Actor, pfn: number, word: number, value: number): void {
    checkWord(word);
    let p = this.pages.get(pfn);
    if (p === undefined) {
      p = new Uint32Array(PAGE_WORDS);
      this.pages.set(pfn, p);
    }
    if (actor === 'hyp' && this.onHypWrite !== null) this.onHypWrite(pfn);
    this.log(wordAddress(pfn, word), p[word]);
    p[word] = value;
  }

  /** Clears a page, journaling only the words that were not already zero. */
  zero_page(actor: Actor, pfn: number): void {
    const p = this.pages.get(pfn);
    if (p === undefined) return;
    // Four words at a time: most pages hyp scrubs hold only a few non-zero words.
    for (let w = 0; w < PAGE_WORDS; w += 4) {
      if ((p[w] | p[w + 1] | p[w + 2] | p[w + 3]) === 0) continue;
      for (let k = w; k < w + 4; k++) if (p[k] !== 0) this.write32(actor, pfn, k, 0);
    }
  }

  /** A 64-bit little-endian word at a byte offset (multiple of 8) inside a page. */
  read64(pfn: number, byte: number): bigint {
    const w = byte >>> 2;
    return (BigInt(this.read32(pfn, w + 1)) << 32n) | BigInt(this.read32(pfn, w));
  }

  /** hyp reading a 64-bit word of data the host provided (see onHypRead). */
  hypRead64(pfn: number, byte: number): bigint {
    if (this.onHypRead !== null) this.onHypRead(pfn);
    return this.read64(pfn, byte);
  }

  write64(actor: Actor, pfn: number, byte: number, v: bigint): void {
    const w = byte >>> 2;
    this.write32(actor, pfn, w, Number(v & 0xffffffffn));
    this.write32(actor, pfn, w + 1, Number((v >> 32n) & 0xffffffffn));
  }

  /** A position in the journal to roll back or compare to. */
  mark(): number {
    return this.jlen;
  }

  /** Undoes every write since `mark`, without comparing. */
  undo(mark: number): void {
    for (let i = this.jlen - 2; i >= mark; i -= 2) this.poke(this.journal[i], this.journal[i + 1]);
    this.jlen = mark;
  }

  /**
   * Locations that differ now from their value at `mark` (a write that restored the old value is no
   * change), each as [journal address, value then, value now]. Leaves everything in place.
   */
  diffSince(mark: number): [JournalAddress, number, number][] {
    const first = new Map<JournalAddress, number>();
    for (let i = mark; i < this.jlen; i += 2) if (!first.has(this.journal[i])) first.set(this.journal[i], this.journal[i + 1]);
    const out: [JournalAddress, number, number][] = [];
    for (const [addr, then] of first) {
      const now = this.peek(addr);
      if ((now >>> 0) !== (then >>> 0)) out.push([addr, then, now]);
    }
    return out;
  }

  /** The pages written since `mark` (from the journal). */
  writtenPages(mark: number): Set<number> {
    const pages = new Set<number>();
    for (let i = mark; i < this.jlen; i += 2) if (!isCellAddress(this.journal[i])) pages.add(addressPfn(this.journal[i]));
    return pages;
  }

  /** "pfn 0x40003 byte 0x10" or "hyp data cell 12" for a journal address. */
  describe(addr: JournalAddress): string {
    if (isCellAddress(addr)) return `hyp data cell ${addressCell(addr)}`;
    return `pfn 0x${addressPfn(addr).toString(16)} byte 0x${(addressWord(addr) * 4).toString(16)}`;
  }

  /** Forgets the journal (keeps the contents): the current state becomes the base. */
  commit(): void {
    this.jlen = 0;
  }

  private log(addr: JournalAddress, old: number): void {
    if (this.jlen + 2 > this.journal.length) {
      const bigger = new Float64Array(this.journal.length * 2);
      bigger.set(this.journal);
      this.journal = bigger;
    }
    this.journal[this.jlen++] = addr;
    this.journal[this.jlen++] = old;
  }

  private peek(addr: JournalAddress): number {
    if (isCellAddress(addr)) return this.cells[addressCell(addr)];
    return this.read32(addressPfn(addr), addressWord(addr));
  }

  private poke(addr: JournalAddress, v: number): void {
    if (isCellAddress(addr)) this.cells[addressCell(addr)] = v;
    else this.pages.get(addressPfn(addr))![addressWord(addr)] = v;
  }
}
