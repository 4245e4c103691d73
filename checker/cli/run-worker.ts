// The suites of one `pkvm-check run`, in a worker thread: the main thread's event loop stays free, so
// SIGINT and SIGTERM reach it while the properties run, and it can write the summary so far.
import { parentPort, workerData } from 'node:worker_threads';
import { runSuite } from '../suites';
import type { Progress, SuiteName, SuiteOptions } from '../suite-types';

export interface WorkerInput {
  readonly suites: readonly SuiteName[];
  readonly opts: Omit<SuiteOptions, 'onProgress'>;
}

/** What the worker tells the main thread: progress (at most every 50 ms) and each suite's result. */
export type WorkerMessage = { readonly type: 'progress'; readonly p: Progress } | { readonly type: 'result'; readonly r: ReturnType<typeof runSuite> };

const port = parentPort;
if (port) {
  const { suites, opts } = workerData as WorkerInput;
  let last = -Infinity;
  const post = (m: WorkerMessage): void => port.postMessage(m);
  for (const name of suites) {
    const r = runSuite(name, {
      ...opts,
      onProgress: (p) => {
        const t = performance.now();
        if (t - last < 50 && p.runsDone < p.runsTotal) return;
        last = t;
        post({ type: 'progress', p });
      },
    });
    post({ type: 'result', r });
  }
}
