// The host fault log (SEMANTICS §6), after KVM address-space isolation's page-fault tracking: each
// injected host abort is logged once per faulting address in a 128-entry table; when full, one
// warning is recorded and new faults are only counted. Kept in journaled cells.
import { FAULT_LOG_SIZE } from '../types/config';
import { addressCell, isCellAddress, type JournalAddress, type PhysMem } from './memory';

const COUNT = 0;
const WARNED = 1;
const DROPPED = 2;
const ABORTS = 3;
const ENTRIES = 4;

export interface FaultLogView {
  readonly entries: number[];
  readonly warned: boolean;
  readonly dropped: number;
  readonly aborts: number;
}

export class HostFaultLog {
  private readonly cells: number;

  constructor(private readonly mem: PhysMem) {
    this.cells = mem.allocCells(ENTRIES + FAULT_LOG_SIZE);
  }

  private at(i: number): number {
    return this.mem.cell(this.cells + i);
  }

  private set(i: number, v: number): void {
    this.mem.setCell(this.cells + i, v);
  }

  record(pfn: number): void {
    this.set(ABORTS, this.at(ABORTS) + 1);
    const count = this.at(COUNT);
    for (let i = 0; i < count; i++) if (this.at(ENTRIES + i) === pfn) return;
    if (count < FAULT_LOG_SIZE) {
      this.set(ENTRIES + count, pfn);
      this.set(COUNT, count + 1);
      return;
    }
    this.set(WARNED, 1); // "fault tracking buffer is full", once
    this.set(DROPPED, this.at(DROPPED) + 1);
  }

  /** The journal addresses (see PhysMem) of the log's cells: an injected abort may change only these. */
  ownsCell(journalAddr: JournalAddress): boolean {
    const cell = addressCell(journalAddr);
    return isCellAddress(journalAddr) && cell >= this.cells && cell < this.cells + ENTRIES + FAULT_LOG_SIZE;
  }

  clear(): void {
    for (const i of [COUNT, WARNED, DROPPED, ABORTS]) this.set(i, 0);
  }

  /** The counters and the newest entry (-1 when empty), without copying the table. */
  tail(): { count: number; last: number; warned: boolean; dropped: number; aborts: number } {
    const count = this.at(COUNT);
    return { count, last: count > 0 ? this.at(ENTRIES + count - 1) : -1, warned: this.at(WARNED) !== 0, dropped: this.at(DROPPED), aborts: this.at(ABORTS) };
  }

  view(): FaultLogView {
    const entries: number[] = [];
    for (let i = 0; i < this.at(COUNT); i++) entries.push(this.at(ENTRIES + i));
    return { entries, warned: this.at(WARNED) !== 0, dropped: this.at(DROPPED), aborts: this.at(ABORTS) };
  }
}
