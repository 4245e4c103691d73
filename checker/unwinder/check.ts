// The unwinder check for one `hyp_panic` call: run the implementation under watch, and compare what
// the host printed with the model; on uncorrupted memory also check the trace's shape against the
// call chain that was built, and that both modes print the same trace. In either format (args.format):
// the model predicts the v4/v5 series' lines as well as upstream's.
import type { PanicPoint } from '../../hyp/stacktrace-cpu';
import { expectedLines } from '../../model/unwind';
import type { UnwindArgs, UnwindMode } from '../../types/calls';
import type { UnwinderBug } from '../bugs/unwinder';
import { modelSpec } from './model-spec';
import { countEntries, runHyp, type UnwindViolation } from './run';
import { P } from '../properties';

export interface UnwindOutcome {
  readonly result: number;
  readonly violation: UnwindViolation | null;
  readonly lines: readonly string[];
}

const quote = (s: string | undefined) => (s === undefined ? 'nothing' : JSON.stringify(s));

/** The first line where two logs differ, described ("line 7 (entry 5): the model prints ..."); null if equal. */
export function firstDifference(a: readonly string[], b: readonly string[], aName: string, bName: string): string | null {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] === b[i]) continue;
    const isEntry = a[i]?.startsWith(' [<') || b[i]?.startsWith(' [<');
    const where = isEntry ? ` (entry ${Math.max(countEntries(a.slice(0, i + 1)), countEntries(b.slice(0, i + 1)))})` : '';
    return `line ${i + 1}${where}: ${aName} prints ${quote(a[i])}, ${bName} prints ${quote(b[i])} (${a.length} lines vs ${b.length})`;
  }
  return null;
}

/** Function names of the printed entries, prefix dropped; "?" for an address in no symbol. */
export const traceFunctions = (lines: readonly string[]): string[] =>
  lines.filter((l) => l.startsWith(' [<')).map((l) => /\] __kvm_nvhe_(\w+)\+0x/.exec(l)?.[1] ?? '?');

/**
 * The trace an uncorrupted panic must print: hyp_panic; on an overflow hyp_panic_bad_stack, else the
 * function that took the abort (its x30 still points into it); then its callers, innermost first,
 * down to __host_exit. A function whose prologue faulted never pushed a record and is not listed.
 * Protected mode keeps the first N - 1.
 */
export function expectedShape(p: PanicPoint, isProtected: boolean, entries: number): string[] {
  const callers = p.in_prologue ? p.call_stack.slice(0, -1) : p.call_stack;
  const names = ['hyp_panic', ...(p.overflow ? ['hyp_panic_bad_stack'] : []), ...[...callers].reverse()];
  return isProtected ? names.slice(0, entries - 1) : names;
}

function shapeViolation(args: UnwindArgs, p: PanicPoint, lines: readonly string[], entries: number): UnwindViolation | null {
  const want = expectedShape(p, args.mode === 'protected', entries);
  const got = traceFunctions(lines);
  const i = want.findIndex((w, k) => got[k] !== w);
  if (i < 0 && got.length === want.length) return null;
  const at = i < 0 ? want.length : i;
  return {
    property: p.overflow ? P.overflowTraceShape : P.callChainTraceShape,
    message: `entry ${at + 1}: expected ${want[at] ?? 'the end of the trace'}, found ${got[at] ?? 'the end of the trace'} (${want.length} entries expected, ${got.length} printed)`,
  };
}

const V5_NAME: Readonly<Record<UnwindMode, string>> = { protected: 'Protected', nonprotected: 'Non-protected' };

/**
 * The other mode's lines as this mode would print them: the v5 header and footer name the mode
 * ("Protected nVHE HYP call trace:"), upstream's do not, and nothing else may differ. Only the
 * header and footer the model expects are renamed: the other mode's are checked against it first.
 */
function asMode(lines: readonly string[], args: UnwindArgs, from: UnwindMode): readonly string[] {
  if ((args.format ?? 'upstream') === 'upstream') return lines;
  const [theirs, mine] = [`${V5_NAME[from]} nVHE HYP call trace`, `${V5_NAME[args.mode]} nVHE HYP call trace`];
  return lines.map((l) => (l === `${theirs}:` || l === `---- End of ${theirs} ----` ? l.replace(theirs, mine) : l));
}

export function checkUnwind(args: UnwindArgs, bugs: readonly UnwinderBug[]): UnwindOutcome {
  const run = runHyp(args, bugs);
  const outcome = (violation: UnwindViolation | null): UnwindOutcome => ({ result: countEntries(run.lines), violation, lines: run.lines });
  if (run.violation || !run.exit) return outcome(run.violation ?? { property: P.unwindBounded, message: 'hyp never handed the panic to the host' });
  const diff = firstDifference(expectedLines(modelSpec(run, run.exit)), run.lines, 'the model', 'the host');
  if (diff) return outcome({ property: P.hostOutputEqualsModel, message: diff });
  if (args.corrupt.length > 0) return outcome(null);
  const shape = shapeViolation(args, run.scenario.panic, run.lines, run.scenario.layout.stacktrace_entries);
  if (shape) return outcome(shape);
  const otherMode = args.mode === 'protected' ? 'nonprotected' : 'protected';
  const other = runHyp({ ...args, mode: otherMode }, bugs);
  if (other.violation) return outcome({ property: other.violation.property, message: `in ${otherMode} mode: ${other.violation.message}` });
  const otherDiff = other.exit && firstDifference(expectedLines(modelSpec(other, other.exit)), other.lines, 'the model', 'the host');
  if (otherDiff) return outcome({ property: P.hostOutputEqualsModel, message: `in ${otherMode} mode: ${otherDiff}` });
  const modes = firstDifference(run.lines, asMode(other.lines, args, otherMode), `${args.mode} mode`, `${otherMode} mode`);
  return outcome(modes ? { property: P.modesAgree, message: modes } : null);
}
