// The progress display: in place, throttled, silent when disabled, and gone after done().
import { describe, expect, test } from 'vitest';
import { progressLine, progressReporter, type ProgressStream } from '../checker/cli/progress';
import type { Progress } from '../checker/suite-types';

/** A stream that records what was written, and a clock the test moves by hand. */
function fakes(columns?: number) {
  const writes: string[] = [];
  const stream: ProgressStream = { columns, write: (chunk: string) => writes.push(chunk) > 0 };
  const clock = { t: 1000 };
  return { writes, stream, clock, now: () => clock.t };
}

/** What a terminal shows after the writes: "\r" returns to the start of the line and overwrites. */
function screen(writes: readonly string[]): string {
  let line = '';
  let col = 0;
  for (const ch of writes.join('')) {
    if (ch === '\r') col = 0;
    else {
      line = line.slice(0, col) + ch + line.slice(col + 1);
      col++;
    }
  }
  return line;
}

const p = (runsDone: number, calls: number, suite: Progress['suite'] = 'ownership'): Progress => ({ suite, runsDone, runsTotal: 200, calls });

describe('progress display', () => {
  test('shows suite, runs, calls per second and elapsed time on one line', () => {
    const { writes, stream, clock, now } = fakes();
    const r = progressReporter(stream, true, now);
    clock.t += 2000;
    r.update(p(120, 168_426));
    expect(writes).toEqual(['\rownership  120/200 runs  84,213 calls/s  2.0 s']);
    expect(writes.join('')).not.toContain('\n');
  });

  test('draws at most ten times a second, but always the last run', () => {
    const { writes, stream, clock, now } = fakes();
    const r = progressReporter(stream, true, now);
    for (let i = 1; i <= 200; i++) {
      clock.t += 10;
      r.update(p(i, i * 100));
    }
    // 2 s of updates every 10 ms: one draw per 100 ms, plus the final one.
    expect(writes.length).toBeGreaterThanOrEqual(19);
    expect(writes.length).toBeLessThanOrEqual(21);
    expect(screen(writes)).toBe('ownership  200/200 runs  10,000 calls/s  2.0 s');
  });

  test('a new suite is drawn at once and its rate counts from when the previous suite ended', () => {
    const { writes, stream, clock, now } = fakes();
    const r = progressReporter(stream, true, now);
    clock.t += 1000;
    r.update(p(200, 50_000));
    clock.t += 50;
    r.update(p(1, 500, 'snapshot'));
    expect(screen(writes).trimEnd()).toBe('snapshot  1/200 runs  10,000 calls/s  1.1 s');
  });

  test('overwrites a longer line completely and done() clears it', () => {
    const { writes, stream, clock, now } = fakes();
    const r = progressReporter(stream, true, now);
    clock.t += 500;
    r.update(p(1, 1_000_000));
    clock.t += 500;
    r.update(p(2, 10));
    expect(screen(writes).trimEnd()).toBe('ownership  2/200 runs  10 calls/s  1.0 s');
    r.done();
    expect(screen(writes).trim()).toBe('');
    expect(writes.at(-1)?.endsWith('\r')).toBe(true);
  });

  test('never wider than the terminal', () => {
    const { writes, stream, clock, now } = fakes(20);
    const r = progressReporter(stream, true, now);
    clock.t += 1000;
    r.update(p(5, 5));
    expect(screen(writes)).toBe('ownership  5/200 ru');
  });

  test('writes nothing when disabled (--json, or not a terminal)', () => {
    const { writes, stream, clock, now } = fakes();
    const r = progressReporter(stream, false, now);
    clock.t += 1000;
    r.update(p(200, 1000));
    r.done();
    expect(writes).toEqual([]);
    // Type check: a real NodeJS.WriteStream is accepted.
    progressReporter(process.stderr, false).done();
  });

  test('no rate before any time has passed', () => {
    expect(progressLine(p(0, 0), null, 0)).toBe('ownership  0/200 runs  – calls/s  0.0 s');
  });
});
