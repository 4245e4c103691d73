// Reports: the `--json` shape of `run` is CONTRACT's, and the same summary gives the same bytes apart
// from durations, whatever order the suites finished in and the coverage was counted in.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, vi } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { SUITE_NAMES, type Coverage, type SuiteResult } from '../checker/suite-types';
import { runJson, summaryJson, writeReports, type RunSummary } from '../checker/report/summary';
import { summaryMarkdown } from '../checker/report/markdown';
import { CALL_NAMES } from '../checker/vocabulary';
import { P, PROPERTIES, PROPERTY_NAMES } from '../checker/properties';

const seedFromEnv = Number(process.env.PKVM_CHECK_SEED ?? '1');
const params = { seed: Number.isSafeInteger(seedFromEnv) ? seedFromEnv : 1, numRuns: 100 };

const failing: SuiteResult = {
  name: 'snapshot',
  runs: 37,
  calls: 1000,
  ok: false,
  counterexample: 'counterexamples/used-pages-0123456789.json',
  counterexampleSteps: 4,
  failure: { property: P.stateAgrees, step: 3, message: 'pfn 0x40003: owner expected hyp, found host' },
  seed: 42,
  coverage: { __pkvm_host_stage2_snapshot: { '-EINVAL': 3, '0': 5 }, __pkvm_host_share_hyp: { '-EPERM': 2, '0': 11 } },
  durationMs: 300.4,
};
const passing: SuiteResult = { name: 'ownership', runs: 200, calls: 41873, ok: true, counterexample: null, failure: null, seed: 42, coverage: {}, durationMs: 1200 };
const summary: RunSummary = { ok: false, seed: 42, inject: null, suites: [failing, passing], calls: 42873, durationMs: 1534.6 };

/** The text with every duration replaced, for comparing two reports of the same run. */
const withoutDurations = (s: string): string => s.replace(/"durationMs": \d+/g, '"durationMs": _').replace(/\d+\.\d s\b/g, '_ s');

const coverage: fc.Arbitrary<Coverage> = fc.dictionary(
  fc.oneof(fc.constantFrom(...CALL_NAMES), fc.string({ minLength: 1, maxLength: 8 })),
  fc.dictionary(fc.oneof(fc.constantFrom('0', '-EPERM', '-EBUSY', '-ENOMEM', '0x1000'), fc.string({ maxLength: 6 })), fc.nat(), { maxKeys: 5 }),
  { maxKeys: 6 },
);
const suite = (name: SuiteResult['name']): fc.Arbitrary<SuiteResult> =>
  fc.record({
    name: fc.constant(name),
    runs: fc.nat(),
    calls: fc.nat(),
    ok: fc.boolean(),
    counterexample: fc.option(fc.string(), { nil: null }),
    failure: fc.option(fc.record({ property: fc.constantFrom(...PROPERTY_NAMES), step: fc.nat(), message: fc.string() }), { nil: null }),
    seed: fc.nat(),
    coverage,
    durationMs: fc.double({ min: 0, max: 1e6, noNaN: true }),
  });
const summaries: fc.Arbitrary<RunSummary> = fc.record({
  ok: fc.boolean(),
  seed: fc.nat(),
  inject: fc.option(fc.constantFrom('snapshot-used-pages-off-by-one', 'x'), { nil: null }),
  suites: fc.subarray([...SUITE_NAMES]).chain((names) => fc.tuple(...names.map(suite))),
  calls: fc.nat(),
  durationMs: fc.double({ min: 0, max: 1e6, noNaN: true }),
});

/** The same run reported differently: suites in another order, coverage counted in another order, other durations. */
function shuffled(s: RunSummary, durationMs: number): RunSummary {
  const reverse = <T>(o: Record<string, T>): Record<string, T> => Object.fromEntries(Object.entries(o).reverse());
  const suites = [...s.suites].reverse().map((r) => ({ ...r, durationMs: durationMs / 2, coverage: reverse(Object.fromEntries(Object.entries(r.coverage).map(([k, v]) => [k, reverse(v)]))) }));
  return { ...s, suites, durationMs };
}

describe('run --json', () => {
  test('has the CONTRACT shape', () => {
    expect(runJson(summary)).toEqual({
      ok: false,
      seed: 42,
      inject: null,
      suites: [
        { name: 'ownership', runs: 200, calls: 41873, ok: true, counterexample: null, failure: null, seed: 42, counterexampleSteps: null, coverage: {} },
        {
          name: 'snapshot',
          runs: 37,
          calls: 1000,
          ok: false,
          counterexample: 'counterexamples/used-pages-0123456789.json',
          failure: { property: P.stateAgrees, step: 3, message: 'pfn 0x40003: owner expected hyp, found host' },
          seed: 42,
          counterexampleSteps: 4,
          coverage: failing.coverage,
        },
      ],
      calls: 42873,
      durationMs: 1535,
    });
  });

  test('is the same bytes however the suites and coverage were ordered', () => {
    fc.assert(
      fc.property(summaries, fc.nat(), (s, ms) => {
        expect(withoutDurations(JSON.stringify(runJson(shuffled(s, ms)), null, 1))).toBe(withoutDurations(JSON.stringify(runJson(s), null, 1)));
      }),
      params,
    );
  });
});

describe('report files', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pkvm-reports-'));
    vi.stubEnv('GITHUB_STEP_SUMMARY', '');
  });
  afterEach(() => {
    vi.unstubAllEnvs();
    rmSync(dir, { recursive: true, force: true });
  });

  test('writes summary.json and summary.md atomically and returns their paths', () => {
    const out = join(dir, 'reports');
    expect(writeReports(out, summary)).toEqual([join(out, 'summary.json'), join(out, 'summary.md')]);
    expect(readdirSync(out).sort()).toEqual(['summary.json', 'summary.md']);
    const json = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { suites: Record<string, unknown>[]; reproduce: string[] };
    expect(json).toEqual(JSON.parse(JSON.stringify(summaryJson(summary))));
    expect(json.suites[1]).toMatchObject({
      name: 'snapshot',
      result: 'fail',
      runs: 37,
      calls: 1000,
      seed: 42,
      counterexamples: ['counterexamples/used-pages-0123456789.json'],
      replay: 'npx pkvm-check replay counterexamples/used-pages-0123456789.json',
      durationMs: 300,
    });
    expect(json.reproduce).toEqual(['PKVM_CHECK_SEED=42 npm test', 'npx pkvm-check run --seed 42']);
  });

  test('summary.md shows the suites, how to reproduce, the failure and the coverage matrix', () => {
    const md = summaryMarkdown(summary);
    expect(md).toContain('| ownership | pass | 200 | 41,873 | 42 | 1.2 s |');
    expect(md).toContain('PKVM_CHECK_SEED=42 npm test\nnpx pkvm-check run --seed 42');
    expect(md).toContain('npx pkvm-check replay counterexamples/used-pages-0123456789.json');
    expect(md).toContain(`Property \`${P.stateAgrees}\` — ${PROPERTIES[P.stateAgrees].statement} — failed at step 3:`);
    // A name the registry does not hold (a hand-written trace's) is shown alone.
    const unknown = summaryMarkdown({ ...summary, suites: [{ ...failing, failure: { ...failing.failure!, property: 'made-up' as typeof P.stateAgrees } }] });
    expect(unknown).toContain('Property `made-up` failed at step 3:');
    expect(md).toContain('| call | 0 | -EINVAL | -EPERM |\n|---|--:|--:|--:|\n| `__pkvm_host_share_hyp` | 11 | · | 2 |\n| `__pkvm_host_stage2_snapshot` | 5 | 3 | · |');
    expect(md.indexOf('## ownership')).toBeLessThan(md.indexOf('## snapshot'));
    const injected = summaryMarkdown({ ...summary, inject: 'snapshot-used-pages-off-by-one' });
    expect(injected).toContain('npx pkvm-check run --seed 42 --inject snapshot-used-pages-off-by-one');
    expect(injected).not.toContain('npm test');
  });

  test('a failing npm test or an interrupted run says so first: the failed tests with their messages, the signal', () => {
    const failedTests = [{ name: 'properties/unwinder.test.ts > nVHE stack unwinder > bounded', message: 'lockstep: property unwind-bounded failed at step 1\nreplay: npx pkvm-check replay counterexamples/u.json' }];
    const md = summaryMarkdown({ ...summary, suites: [passing], ok: false, failedTests, reproduce: ['PKVM_CHECK_SEED=42 npx vitest run --shard=2/4'] });
    expect(md.split('\n')[0]).toBe('# pkvm-check: 1 test failed');
    expect(md).toContain('## Failed tests\n\nproperties/unwinder.test.ts \\> nVHE stack unwinder \\> bounded:\n\n```text\nlockstep: property unwind-bounded failed at step 1\nreplay: npx pkvm-check replay counterexamples/u.json\n```');
    expect(md).toContain('```sh\nPKVM_CHECK_SEED=42 npx vitest run --shard=2/4\n```');
    const stopped = summaryMarkdown({ ...summary, suites: [{ ...passing, incomplete: true }], ok: false, interrupted: 'SIGINT' });
    expect(stopped.split('\n')[0]).toBe('# pkvm-check: interrupted by SIGINT (incomplete)');
    expect(stopped).toContain('| ownership | interrupted | 200 |');
    expect(summaryJson({ ...summary, interrupted: 'SIGTERM', failedTests })).toMatchObject({ interrupted: 'SIGTERM', failedTests });
  });

  test('two reports of the same run are byte-identical apart from durations', () => {
    fc.assert(
      fc.property(summaries, fc.nat(), (s, ms) => {
        const a = join(dir, 'a');
        const b = join(dir, 'b');
        writeReports(a, s);
        writeReports(b, shuffled(s, ms));
        for (const f of ['summary.json', 'summary.md']) {
          const [x, y] = [readFileSync(join(a, f), 'utf8'), readFileSync(join(b, f), 'utf8')];
          expect(withoutDurations(y)).toBe(withoutDurations(x));
        }
        writeReports(b, s);
        for (const f of ['summary.json', 'summary.md']) expect(readFileSync(join(b, f), 'utf8')).toBe(readFileSync(join(a, f), 'utf8'));
        expect(readdirSync(b).sort()).toEqual(['summary.json', 'summary.md']);
      }),
      { ...params, numRuns: 30 },
    );
  });

  test('appends the Markdown to GITHUB_STEP_SUMMARY when it names a file', () => {
    const stepSummary = join(dir, 'step-summary.md');
    writeFileSync(stepSummary, '# earlier step\n');
    vi.stubEnv('GITHUB_STEP_SUMMARY', stepSummary);
    const paths = writeReports(join(dir, 'reports'), summary);
    expect(paths).not.toContain(stepSummary);
    expect(readFileSync(stepSummary, 'utf8')).toBe(`# earlier step\n${summaryMarkdown(summary)}\n`);
  });
});
