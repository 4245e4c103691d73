// The suites of one `pkvm-check run`, in a worker thread: the main thread's event loop stays free, so
// SIGINT and SIGTERM reach it while the properties run, and it can write the summary so far.
import { parentPort, workerData } from 'node:worker_threads';
import { runSuite } from '../suites';
import type { Progress, SuiteName, SuiteOptions } from '../suite-types';
import type { MachineConfig } from '../../types/config';

export interface WorkerInput {
  readonly suites: readonly SuiteName[];
  readonly opts: Omit<SuiteOptions, 'onProgress'>;
  /** `--config`'s machine for every suite; absent: the suites rotate over checker/machines.ts. */
  readonly config?: MachineConfig;
}

/** What the worker tells the main thread: progress (at most every 50 ms) and each suite's result. */
export type WorkerMessage = { readonly type: 'progress'; readonly p: Progress } | { readonly type: 'result'; readonly r: ReturnType<typeof runSuite> };

const port = parentPort;
if (port) {
  const { suites, opts, config } = workerData as WorkerInput;
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
    }, config);
    post({ type: 'result', r });
  }
}
