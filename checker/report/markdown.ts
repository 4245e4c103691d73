// reports/summary.md: the run for a human (and for GitHub's job summary page). One table of suites,
// how to reproduce, and per suite its failure (with the replay command) and the coverage matrix of
// calls × results. Numbers are formatted without the locale, so the bytes are the same on any machine.
import type { SuiteResult } from '../suite-types';
import { replayCommandLine } from '../trace/file';
import { compareCalls, resultColumns } from './coverage';
import { orderedSuites, reproduceCommands, type RunSummary } from './run-summary';

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

function overview(s: RunSummary, suites: readonly SuiteResult[]): string[] {
  const failed = suites.filter((r) => !r.ok).length;
  return [
    s.ok ? '# pkvm-check: all properties hold' : `# pkvm-check: ${failed} of ${suites.length} suites failed`,
    '',
    '| suite | result | runs | calls | seed | duration |',
    '|---|---|--:|--:|--:|--:|',
    ...suites.map((r) => `| ${r.name} | ${r.ok ? 'pass' : '**fail**'} | ${count(r.runs)} | ${count(r.calls)} | ${r.seed} | ${seconds(r.durationMs)} |`),
    '',
    `Seed ${s.seed} · injected bug: ${s.inject === null ? 'none' : code(s.inject)} · ${count(s.calls)} checked calls in ${seconds(s.durationMs)}`,
    '',
    'Reproduce this run:',
    '',
    fenced('sh', reproduceCommands(s).join('\n')),
  ];
}

function failureSection(r: SuiteResult, inject: string | null): string[] {
  if (r.failure === null && r.counterexample === null) return [];
  const lines: string[] = [];
  if (r.failure !== null) {
    const at = r.failure.step === 0 ? 'before the first step' : `at step ${r.failure.step}`;
    lines.push(`Property ${code(r.failure.property)} failed ${at}:`, '', fenced('text', r.failure.message), '');
  }
  if (r.counterexample !== null) {
    const steps = r.counterexampleSteps === undefined ? '' : ` (${r.counterexampleSteps} steps)`;
    lines.push(`Counterexample ${code(r.counterexample)}${steps}; replay it with:`, '', fenced('sh', replayCommandLine(r.counterexample, inject)), '');
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
    `## ${r.name}: ${r.ok ? 'pass' : 'fail'}`,
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
