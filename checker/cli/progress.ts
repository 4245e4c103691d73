// The one-line progress display of a long `run` on a terminal: rewritten in place with "\r" (no
// escape sequences), at most ~10 times a second, and never when the output is JSON or not a TTY (the
// caller passes `enabled = !json && stream.isTTY`). Wall-clock time is fine here: this is checker/,
// and nothing it measures reaches the reports' deterministic bytes.
import type { Progress } from '../suite-types';

/** What the display writes to: any NodeJS.WriteStream (process.stderr) or a fake in tests. */
export interface ProgressStream {
  write(chunk: string): boolean;
  readonly columns?: number;
}

export interface ProgressReporter {
  update(p: Progress): void;
  /** Clears the line, so the next output starts on a clean line. */
  done(): void;
}

const MIN_INTERVAL_MS = 100;

const count = (n: number): string => String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

/** "ownership  120/200 runs  84,213 calls/s  3.2 s" */
export function progressLine(p: Progress, callsPerSecond: number | null, elapsedMs: number): string {
  const rate = callsPerSecond === null ? '–' : count(callsPerSecond);
  return `${p.suite}  ${p.runsDone}/${p.runsTotal} runs  ${rate} calls/s  ${(elapsedMs / 1000).toFixed(1)} s`;
}

export function progressReporter(stream: ProgressStream, enabled: boolean, now: () => number = () => performance.now()): ProgressReporter {
  if (!enabled) return { update: () => undefined, done: () => undefined };
  const start = now();
  let suite: string | null = null;
  /** When the current suite started: the previous suite's last update (suites run one after another). */
  let suiteStart = start;
  let lastSeen = start;
  let lastDrawn = -Infinity;
  let shown = 0;

  const draw = (line: string): void => {
    const width = stream.columns ? stream.columns - 1 : line.length;
    const text = line.slice(0, width);
    stream.write(`\r${text}${' '.repeat(Math.max(0, shown - text.length))}`);
    shown = text.length;
  };

  return {
    update(p) {
      const t = now();
      if (p.suite !== suite) {
        suite = p.suite;
        suiteStart = lastSeen;
        lastDrawn = -Infinity;
      }
      lastSeen = t;
      const finished = p.runsDone >= p.runsTotal;
      if (t - lastDrawn < MIN_INTERVAL_MS && !finished) return;
      lastDrawn = t;
      const seconds = (t - suiteStart) / 1000;
      draw(progressLine(p, seconds > 0 ? p.calls / seconds : null, t - start));
    },
    done() {
      if (shown > 0) stream.write(`\r${' '.repeat(shown)}\r`);
      shown = 0;
    },
  };
}
