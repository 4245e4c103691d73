// The host fault log's own rules (hyp/fault-log.ts), directly: bounded, deduplicated, one warning,
// every abort counted, and which journaled cells are its own. properties/fault-log.test.ts drives it
// past its capacity through the lockstep.
import { describe, expect, test } from 'vitest';
import { HostFaultLog } from '../hyp/fault-log';
import { cellAddress, PhysMem, wordAddress } from '../hyp/memory';
import { FAULT_LOG_SIZE } from '../types/config';

describe('host fault log', () => {
  test('logs each page once, warns once when full, counts every abort; clear empties it', () => {
    const m = new PhysMem();
    m.allocCells(5);
    const log = new HostFaultLog(m);
    expect(log.view()).toEqual({ entries: [], warned: false, dropped: 0, aborts: 0 });
    log.record(7);
    log.record(7);
    log.record(8);
    expect(log.view()).toEqual({ entries: [7, 8], warned: false, dropped: 0, aborts: 3 });
    for (let p = 100; p < 100 + FAULT_LOG_SIZE - 2; p++) log.record(p);
    expect(log.view().entries.length).toBe(FAULT_LOG_SIZE);
    expect(log.view().warned).toBe(false);
    log.record(100 + FAULT_LOG_SIZE - 3); // already logged: no warning
    expect(log.view().warned).toBe(false);
    log.record(5000);
    log.record(5000);
    expect(log.view()).toMatchObject({ warned: true, dropped: 2, aborts: FAULT_LOG_SIZE + 1 + 1 + 2 });
    expect(log.view().entries).not.toContain(5000);
    log.clear();
    expect(log.view()).toEqual({ entries: [], warned: false, dropped: 0, aborts: 0 });
    log.record(9);
    expect(log.view()).toEqual({ entries: [9], warned: false, dropped: 0, aborts: 1 });
  });

  test('owns exactly its own cells', () => {
    const m = new PhysMem();
    m.allocCells(5);
    const log = new HostFaultLog(m);
    const after = m.allocCells(1);
    const first = 5;
    expect(log.ownsCell(cellAddress(first - 1))).toBe(false);
    expect(log.ownsCell(cellAddress(first))).toBe(true);
    expect(log.ownsCell(cellAddress(after - 1))).toBe(true);
    expect(log.ownsCell(cellAddress(after))).toBe(false);
    expect(log.ownsCell(wordAddress(0, first))).toBe(false); // a page word, not a cell
    expect(log.ownsCell(wordAddress(0, 0))).toBe(false);
  });
});
