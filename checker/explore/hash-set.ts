// The visited set: 53-bit state hashes in an open-addressing table of doubles (linear probing, at
// most half full), 16 to 32 bytes per state and no per-entry objects for the garbage collector.

export class HashSet53 {
  private table = new Float64Array(1 << 12);
  private mask = this.table.length - 1;
  size = 0;
  private hasZero = false;

  /** Adds `h` (a non-negative integer below 2^53); false when it was already there. */
  add(key: number): boolean {
    if (key === 0) {
      // 0 marks an empty slot, so the key 0 is kept aside.
      if (this.hasZero) return false;
      this.hasZero = true;
      this.size++;
      return true;
    }
    let i = (key ^ (key / 4294967296)) & this.mask;
    for (;;) {
      const k = this.table[i];
      if (k === 0) break;
      if (k === key) return false;
      i = (i + 1) & this.mask;
    }
    this.table[i] = key;
    if (++this.size * 2 > this.table.length) this.grow();
    return true;
  }

  /** Bytes the table takes now. */
  get bytes(): number {
    return this.table.byteLength;
  }

  private grow(): void {
    const old = this.table;
    this.table = new Float64Array(old.length * 2);
    this.mask = this.table.length - 1;
    for (const key of old) {
      if (key === 0) continue;
      let i = (key ^ (key / 4294967296)) & this.mask;
      while (this.table[i] !== 0) i = (i + 1) & this.mask;
      this.table[i] = key;
    }
  }
}
