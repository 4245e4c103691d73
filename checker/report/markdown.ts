// reports/summary.md: the run for a human (and for GitHub's job summary page). One table of suites,
// how to reproduce, and per suite its failure (with the replay command) and the coverage matrix of
// calls × results. Numbers are formatted without the locale, so the bytes are the same on any machine.
import { propertyStatement } from '../properties';
import type { SuiteResult } from '../suite-types';
import { replayCommandLine } from '../trace/file';
import { compareCalls, resultColumns } from './coverage';
import { orderedSuites, reproduceCommands, type FailedTest, type RunSummary } from './run-summary';

/** 41873 → "41,873". */
const count = (n: number): string => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** Text safe inside a paragraph or a table cell. */
const text = (s: string): string => s.replace(/[\\`*_|<>[\]#]/g, (c) => `\\${c}`).replace(/\s*\n\s*/g, ' ');
const code = (s: string): string => (/^[\w./-]+$/.test(s) ? `\`${s}\`` : text(s));

/** A fenced block that no backtick run inside `body` can close early. */
function fenced(lang: string, body: string): string {
  const longest = Math.max(2, ...(body.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}${lang}\n${body}\n${fence}`;
}

/** The title: what happened, failures first. */
function headline(s: RunSummary, suites: readonly SuiteResult[]): string {
  const failed = suites.filter((r) => !r.ok).length;
  const tests = s.failedTests?.length ?? 0;
  const parts = [
    ...(s.interrupted ? [`interrupted by ${s.interrupted} (incomplete)`] : []),
    ...(failed > 0 ? [`${failed} of ${suites.length} suites failed`] : []),
    ...(tests > 0 ? [`${tests} ${tests === 1 ? 'test' : 'tests'} failed`] : []),
  ];
  if (parts.length === 0) return s.ok ? '# pkvm-check: all properties hold' : '# pkvm-check: failed';
  return `# pkvm-check: ${parts.join(', ')}`;
}

/** The failed tests of `npm test`, each with its message (the property and the replay command). */
function failedTestsSection(tests: readonly FailedTest[] | undefined): string[] {
  if (!tests || tests.length === 0) return [];
  return ['', '## Failed tests', '', ...tests.flatMap((t) => [`${text(t.name)}:`, '', fenced('text', t.message), ''])];
}

const result = (r: SuiteResult): string => (r.incomplete ? 'interrupted' : r.ok ? 'pass' : '**fail**');

function overview(s: RunSummary, suites: readonly SuiteResult[]): string[] {
  return [
    headline(s, suites),
    '',
    '| suite | result | runs | calls | seed | duration |',
    '|---|---|--:|--:|--:|--:|',
    ...suites.map((r) => `| ${r.name} | ${result(r)} | ${count(r.runs)} | ${count(r.calls)} | ${r.seed} | ${seconds(r.durationMs)} |`),
    '',
    `Seed ${s.seed} · injected bug: ${s.inject === null ? 'none' : code(s.inject)} · ${count(s.calls)} checked calls in ${seconds(s.durationMs)}`,
    '',
    'Reproduce this run:',
    '',
    fenced('sh', reproduceCommands(s).join('\n')),
    ...failedTestsSection(s.failedTests),
  ];
}

function failureSection(r: SuiteResult, inject: string | null): string[] {
  if (r.failure === null && r.counterexample === null) return [];
  const lines: string[] = [];
  if (r.failure !== null) {
    const at = r.failure.step === 0 ? 'before the first step' : `at step ${r.failure.step}`;
    const statement = propertyStatement(r.failure.property);
    const says = statement === undefined ? '' : ` — ${text(statement)} —`;
    lines.push(`Property ${code(r.failure.property)}${says} failed ${at}:`, '', fenced('text', r.failure.message), '');
  }
  if (r.counterexample !== null) {
    const steps = r.counterexampleSteps === undefined ? '' : ` (${r.counterexampleSteps} steps)`;
    lines.push(`Counterexample ${code(r.counterexample)}${steps}; replay it with:`, '', fenced('sh', replayCommandLine(r.counterexample, inject)), '');
  } else if (r.counterexampleProblem) {
    lines.push(`No counterexample written: ${text(r.counterexampleProblem)}. The trace:`, '', fenced('json', (r.counterexampleText ?? '').trimEnd()), '');
  }
  return lines;
}

function coverageTable(r: SuiteResult): string[] {
  const calls = Object.keys(r.coverage).sort(compareCalls);
  if (calls.length === 0) return ['No calls recorded.'];
  const columns = resultColumns(r.coverage);
  return [
    `| call | ${columns.map(text).join(' | ')} |`,
    `|---|${columns.map(() => '--:').join('|')}|`,
    ...calls.map((call) => `| ${code(call)} | ${columns.map((c) => (r.coverage[call][c] === undefined ? '·' : count(r.coverage[call][c]))).join(' | ')} |`),
  ];
}

/** The whole Markdown report, ending in a newline. */
export function summaryMarkdown(s: RunSummary): string {
  const suites = orderedSuites(s);
  const sections = suites.flatMap((r) => [
    '',
    `## ${r.name}: ${result(r).replace(/\*/g, '')}`,
    '',
    `${count(r.runs)} runs, ${count(r.calls)} calls, seed ${r.seed}, ${seconds(r.durationMs)}.`,
    '',
    ...failureSection(r, s.inject),
    'Coverage (how often each call returned each result):',
    '',
    ...coverageTable(r),
  ]);
  return `${[...overview(s, suites), ...sections].join('\n').trimEnd()}\n`;
}
