// The summary of `npm test` (and of each CI shard): reports/summary.json and summary.md, like those of
// `pkvm-check run`, written at the end of every vitest run, pass or fail. Suites run through
// `runSuite` hand in their results (runs, calls, coverage, trace) through the test's metadata; every
// failed test, whatever its file, is listed with its message, which for a property names the
// property and the replay command of its trace.
import type { Reporter, TestModule, TestRunEndReason, Vitest } from 'vitest/node';
import type { SerializedError } from 'vitest';
import { writeReports } from '../checker/report/summary';
import type { FailedTest, RunSummary } from '../checker/report/run-summary';
import type { SuiteResult } from '../checker/suite-types';
import { SEED } from './seed';
import './traced';

/** The first lines of an error: enough to say what failed and how to replay it. */
const message = (errors: readonly SerializedError[] | undefined): string =>
  (errors ?? [])
    .map((e) => e.message ?? String(e))
    .join('\n')
    .split('\n')
    .slice(0, 40)
    .join('\n');

export class SummaryReporter implements Reporter {
  private shard: { index: number; count: number } | undefined;
  private started = 0;

  constructor(private readonly dir = 'reports') {}

  onInit(vitest: Vitest): void {
    this.shard = vitest.config.shard;
    this.started = performance.now();
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandled: ReadonlyArray<SerializedError>, reason: TestRunEndReason): void {
    const suites: SuiteResult[] = [];
    const failedTests: FailedTest[] = [];
    for (const m of modules) {
      if (m.errors().length > 0) failedTests.push({ name: m.relativeModuleId, message: message(m.errors()) });
      for (const t of m.children.allTests()) {
        const r = t.meta().suiteResult;
        if (r) suites.push(r);
        const result = t.result();
        if (result.state === 'failed') failedTests.push({ name: `${m.relativeModuleId} > ${t.fullName}`, message: message(result.errors) });
      }
    }
    if (unhandled.length > 0) failedTests.push({ name: 'unhandled errors', message: message(unhandled) });
    const shard = this.shard ? ` --shard=${this.shard.index}/${this.shard.count}` : '';
    const summary: RunSummary = {
      ok: reason === 'passed' && failedTests.length === 0,
      seed: SEED,
      inject: null,
      suites,
      calls: suites.reduce((n, r) => n + r.calls, 0),
      durationMs: performance.now() - this.started,
      reproduce: [shard ? `PKVM_CHECK_SEED=${SEED} npx vitest run${shard}` : `PKVM_CHECK_SEED=${SEED} npm test`],
      interrupted: reason === 'interrupted' ? 'an interrupt' : null,
      failedTests,
    };
    try {
      writeReports(this.dir, summary);
    } catch (e) {
      // The run's own result stands; the summary's absence is said once.
      process.stderr.write(`pkvm-check summary: ${(e as Error).message}\n`);
    }
  }
}
