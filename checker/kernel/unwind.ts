// The real hypervisor's stack dump, checked with the simulated unwinder's properties.
//
// kernel/patches/0002 adds a test hypercall that panics the hypervisor with a known call chain on
// its stack: `call_chain` (N frames of a recursive function, then a WARN_ON, fatal at EL2) or
// `recursive_death` (a recursion until SP enters the guard page below the one-page hyp stack, so
// the vector moves to the overflow stack and panics through hyp_panic_bad_stack). In protected
// mode EL2 unwinds its own stacks into the per-CPU pkvm_stacktrace buffer and the host prints it;
// in non-protected nVHE mode (kvm-arm.mode=nvhe) the host unwinds the hyp stacks itself through
// its own mapping of them. Either way the host logs the same block (checker/kernel/panic-log.ts).
//
// Here a fresh machine boots in the chosen mode, the agent triggers the hypercall, the machine goes
// down, and the console's report is checked against the call chain the patch builds, with symbols
// from the image's own vmlinux.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { nvheStacktraceSize } from '../../hyp/stacktrace-layout';
import type { UnwindArgs, UnwindMode } from '../../types/calls';
import { maxRecords, runHyp } from '../unwinder/run';
import { traceFunctions } from '../unwinder/check';
import { OP } from './abi';
import { parsePanicLog, type PanicLog, type TraceEntry } from './panic-log';
import { Machine, MachineDown } from './qemu';
import { KERNEL_RAM_MIB, RAM_FIRST_PFN } from './relocate';
import { P, type PropertyName } from '../properties';

export type KernelScenario = 'recursive_death' | 'call_chain';

/** The scenario codes of PKVM_CHECK_STACK (include/uapi/linux/pkvm_check.h). */
const SCENARIO_CODE: Readonly<Record<KernelScenario, number>> = { call_chain: 0, recursive_death: 1 };
/** PKVM_CHECK_STACK_MAX_DEPTH: call_chain's frames all fit on the 4 KiB hyp stack. */
export const MAX_KERNEL_DEPTH = 64;
/** The 6.12 image's page size (arm64 defaults to 4 KiB pages); the hyp stack is one page. */
const PAGE_SIZE = 4096;
const PREFIX = '__kvm_nvhe_';

export interface KernelUnwindOptions {
  readonly imageDir: string;
  readonly scenario: KernelScenario;
  readonly mode: UnwindMode;
  /** Frames of call_chain (1 to MAX_KERNEL_DEPTH); recursive_death takes none. */
  readonly depth: number;
  readonly timeoutMs?: number;
}

export interface PropertyResult {
  readonly property: PropertyName;
  readonly ok: boolean;
  readonly detail: string;
}

export interface KernelUnwindRun {
  readonly log: PanicLog;
  readonly properties: readonly PropertyResult[];
  /** Function names of the real entries (prefix dropped), and the simulated prediction's. */
  readonly real: readonly string[];
  readonly simulated: readonly string[];
  readonly simLines: readonly string[];
  readonly simViolation: string | null;
  readonly bootMs: number;
  /** From sending the op to QEMU's exit. */
  readonly panicMs: number;
  /** Set when the hypercall returned instead of panicking (its return value). */
  readonly returned: number | null;
}

// ---- symbols

export interface HypSymbol {
  readonly name: string;
  readonly start: bigint;
  /** What kallsyms reports as the size: the distance to the next text symbol. */
  readonly size: bigint;
}

/** The image's text symbols (kallsyms only knows text), sorted by address. */
export function textSymbols(vmlinux: string): HypSymbol[] {
  const r = spawnSync('aarch64-linux-gnu-nm', ['-n', '--defined-only', vmlinux], { encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`aarch64-linux-gnu-nm ${vmlinux} failed: ${r.stderr || r.error?.message}`);
  const text = r.stdout
    .split('\n')
    .map((l) => /^([0-9a-f]{16}) ([tTwW]) (\S+)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && !m[3].startsWith('$'))
    .map((m) => ({ name: m[3], start: BigInt(`0x${m[1]}`) }));
  return text.map((s, i) => ({ ...s, size: (text.slice(i + 1).find((n) => n.start > s.start)?.start ?? s.start) - s.start }));
}

/** The symbol holding an address, as %pB would name it. */
function symbolAt(symbols: readonly HypSymbol[], addr: bigint): HypSymbol | null {
  let lo = 0;
  let hi = symbols.length - 1;
  let found: HypSymbol | null = null;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (symbols[mid].start <= addr) {
      found = symbols[mid];
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found && addr < found.start + found.size ? found : null;
}

// ---- the call chain the patch builds, and the trace it must print

/**
 * The hyp call stack when the scenario faults, outermost first: the host's HVC enters at
 * __host_exit (host.S), handle_trap dispatches to the hypercall's handler (through
 * handle_host_hcall, unless the compiler inlined it: then vmlinux has no symbol for it).
 */
function entryPath(symbols: readonly HypSymbol[]): string[] {
  const hcall = symbols.some((s) => s.name === `${PREFIX}handle_host_hcall`);
  return ['__host_exit', 'handle_trap', ...(hcall ? ['handle_host_hcall'] : []), 'handle___pkvm_check_stack', '__pkvm_check_stack'];
}

/**
 * What an untruncated trace must list, innermost first. hyp_panic's own pc comes first; its frame
 * record holds the x30 of the code that took the exception.
 * - call_chain: the innermost frame pushed its record and called nothing before its WARN_ON, so x30
 *   is still its return address into its caller: that caller appears twice, then every caller in turn.
 * - recursive_death: the innermost call faulted storing its frame record, so it is not listed;
 *   hyp_panic_bad_stack's record holds x30, the return address into the last complete frame.
 * `depthOrFrames` is call_chain's depth, or the number of complete recursive_death frames.
 */
export function expectedFunctions(scenario: KernelScenario, path: readonly string[], depthOrFrames: number): string[] {
  if (scenario === 'call_chain') {
    const stack = [...path, ...Array<string>(depthOrFrames).fill('call_chain')];
    return ['hyp_panic', stack[stack.length - 2], ...stack.slice(0, -1).reverse()];
  }
  const stack = [...path, ...Array<string>(depthOrFrames).fill('recursive_death')];
  return ['hyp_panic', 'hyp_panic_bad_stack', ...stack.reverse()];
}

/** Entries the host may print: N - 1 in protected mode (pkvm_stacktrace[N] keeps a 0), one per record otherwise. */
export function entryBound(mode: UnwindMode): number {
  return mode === 'protected' ? nvheStacktraceSize(PAGE_SIZE) / 8 - 1 : maxRecords(PAGE_SIZE) + 1;
}

/** Length of the run of `name` starting at index `from`. */
const runLength = (names: readonly string[], from: number, name: string): number => {
  let n = 0;
  while (names[from + n] === name) n++;
  return n;
};

const hex = (x: bigint): string => `0x${x.toString(16)}`;

export function checkRealTrace(opts: Pick<KernelUnwindOptions, 'scenario' | 'mode' | 'depth'>, log: PanicLog, symbols: readonly HypSymbol[]): PropertyResult[] {
  const out: PropertyResult[] = [];
  const check = (property: PropertyName, ok: boolean, detail: string): void => void out.push({ property, ok, detail });
  const names = traceFunctions(log.entries.map((e) => e.text));
  const overflow = opts.scenario === 'recursive_death';

  const missing = [
    ...(log.site ? [] : ['the "nVHE hyp ... at:" line']),
    ...(log.traceStart ? [] : ['"nVHE call trace:"']),
    ...(log.traceEnd ? [] : ['"---[ end nVHE call trace ]---"']),
    ...(log.hypOffset !== null ? [] : ['"Hyp Offset:"']),
    ...(log.hostPanicked ? [] : ['"Kernel panic - not syncing: HYP panic:"']),
  ];
  check(P.panicReported, missing.length === 0, missing.length === 0 ? `site, call trace (${log.entries.length} entries), end marker, Hyp Offset, host panic` : `missing ${missing.join(', ')}`);

  const site = log.site;
  const siteOk =
    site !== null &&
    (overflow ? site.kind === 'panic' && site.symbol === `${PREFIX}recursive_death` : site.kind === 'bug' && site.file.endsWith('hyp/nvhe/pkvm_check_stack.c'));
  const siteText = site === null ? 'none' : site.kind === 'bug' ? `BUG at ${site.file}:${site.line}` : `${site.kind} at ${site.symbol ?? '?'}+${hex(site.offset)}`;
  check(P.panicSite, siteOk, `${siteText} (expected ${overflow ? 'a panic in recursive_death (the store into the guard page)' : 'the WARN_ON in pkvm_check_stack.c'})`);

  const badFormat = [...log.malformed, ...log.entries.filter((e) => !e.symbol?.startsWith(PREFIX)).map((e) => e.text)];
  check(P.lineFormat, badFormat.length === 0, badFormat.length === 0 ? `every entry is " [<%016llx>] ${PREFIX}SYM+OFF/SIZE"` : `not in the kernel's format: ${JSON.stringify(badFormat[0])}`);

  const wrong = log.entries.map((e) => symbolMismatch(e, symbols)).find((m) => m !== null);
  check(P.symbolsMatchVmlinux, wrong === undefined && log.entries.length > 0, wrong ?? `every address is its printed symbol + offset in vmlinux, sizes as kallsyms computes them`);

  const bound = entryBound(opts.mode);
  check(P.entriesBounded, log.entries.length <= bound, `${log.entries.length} entries, at most ${bound}${opts.mode === 'protected' ? ` (N - 1, N = NVHE_STACKTRACE_SIZE / 8 = ${bound + 1})` : ' (one per frame record the two stacks can hold, and the pc)'}`);

  check(P.startsAtHypPanic, names[0] === 'hyp_panic', `entry 1 is ${names[0] ?? 'missing'}`);
  const badStack = names.indexOf('hyp_panic_bad_stack');
  check(
    P.overflowPath,
    overflow ? badStack === 1 : badStack < 0,
    overflow ? `entry 2 is ${names[1] ?? 'missing'} (expected hyp_panic_bad_stack)` : badStack < 0 ? 'no hyp_panic_bad_stack: the panic stayed on the hyp stack' : `hyp_panic_bad_stack at entry ${badStack + 1}`,
  );

  // The recursion: a run of the recursive function right after the panic path.
  const path = entryPath(symbols);
  const fn = overflow ? 'recursive_death' : 'call_chain';
  const from = overflow ? 2 : 1;
  const run = runLength(names, from, fn);
  const runAddrs = new Set(log.entries.slice(from, from + run).map((e) => e.addr));
  if (overflow) {
    check(P.recursion, run >= 2 && runAddrs.size === 1, `${run} recursive_death entries from entry ${from + 1}, ${runAddrs.size} distinct return address(es) (one call site)`);
  } else {
    // The innermost frame's caller appears twice: with one frame that caller is __pkvm_check_stack.
    const want = opts.depth >= 2 ? opts.depth : 0;
    check(P.recursion, run === want && runAddrs.size <= 1, `${run} call_chain entries from entry ${from + 1} for --depth ${opts.depth} (expected ${want}), ${runAddrs.size} distinct return address(es)`);
  }

  // The whole chain, down to __host_exit unless the protected buffer truncated it.
  const full = expectedFunctions(opts.scenario, path, overflow ? run : opts.depth);
  const truncated = opts.mode === 'protected' && full.length > bound;
  const want = truncated ? full.slice(0, bound) : full;
  const at = want.findIndex((w, i) => names[i] !== w);
  const chainOk = at < 0 && names.length === want.length;
  const where = at < 0 ? want.length : at;
  check(
    P.chainToHostExit,
    chainOk,
    chainOk
      ? truncated
        ? `the first ${bound} of ${full.length} entries (truncated)`
        : `... ${path.slice(1).reverse().join(', ')}, __host_exit`
      : `entry ${where + 1}: expected ${want[where] ?? 'the end of the trace'}, found ${names[where] ?? 'the end of the trace'} (${want.length} entries expected, ${names.length} printed)`,
  );
  return out;
}

/**
 * Why an entry disagrees with vmlinux, or null. %pB prints a return address: it looks up the symbol
 * of ADDR - 1 (a call at the very end of a function, like hyp_panic_bad_stack's noreturn call to
 * hyp_panic, returns to the first byte of the next symbol) and prints the offset of ADDR itself.
 */
function symbolMismatch(e: TraceEntry, symbols: readonly HypSymbol[]): string | null {
  const s = symbolAt(symbols, e.addr - 1n);
  if (!s) return `${JSON.stringify(e.text)}: ${hex(e.addr)} is in no text symbol of vmlinux`;
  if (s.name !== e.symbol || s.start + e.offset !== e.addr || s.size !== e.size)
    return `${JSON.stringify(e.text)}: vmlinux says ${s.name}+${hex(e.addr - s.start)}/${hex(s.size)}`;
  return null;
}

// ---- running it

const failed = (property: PropertyName, detail: string): PropertyResult => ({ property, ok: false, detail });

/** Boots a machine, triggers the scenario, and checks what the host printed. */
export function runKernelUnwind(opts: KernelUnwindOptions): KernelUnwindRun {
  const symbols = textSymbols(join(opts.imageDir, 'vmlinux'));
  const windowBytes = 2 * 2 ** 20; // the device opens only with a window; the stack op uses none of it
  const m = new Machine({
    imageDir: opts.imageDir,
    windowBase: (RAM_FIRST_PFN + KERNEL_RAM_MIB * 256) * 4096,
    windowBytes,
    ramMiB: KERNEL_RAM_MIB + windowBytes / 2 ** 20,
    mode: opts.mode === 'protected' ? 'protected' : 'nvhe',
    timeoutMs: opts.timeoutMs,
  });
  const sent = performance.now();
  let console = '';
  let returned: number | null = null;
  try {
    const [r] = m.run([{ op: OP.STACK, a: SCENARIO_CODE[opts.scenario], b: opts.scenario === 'call_chain' ? opts.depth : 0 }]);
    returned = r.ret;
    console = m.close();
  } catch (e) {
    if (!(e instanceof MachineDown)) throw e;
    console = e.console;
    m.close();
  }
  const panicMs = performance.now() - sent;
  const log = parsePanicLog(console);
  const checked = checkRealTrace(opts, log, symbols);
  const properties = returned === null ? checked : [failed(P.panicReported, `the hypercall returned ${returned} instead of panicking`), ...checked];

  const simArgs: UnwindArgs = { scenario: opts.scenario, mode: opts.mode, page_size: PAGE_SIZE, depth: opts.depth, seed: 0, corrupt: [] };
  const sim = runHyp(simArgs, []);
  return {
    log,
    properties,
    real: traceFunctions(log.entries.map((e) => e.text)),
    simulated: traceFunctions(sim.lines),
    simLines: sim.lines,
    simViolation: sim.violation && `${sim.violation.property}: ${sim.violation.message}`,
    bootMs: m.bootMs,
    panicMs,
    returned,
  };
}

// ---- printing

/** Runs of one function collapsed: "recursive_death ×7". */
export function collapseRuns(names: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < names.length; ) {
    const n = runLength(names, i, names[i]);
    out.push(n > 1 ? `${names[i]} ×${n}` : names[i]);
    i += n;
  }
  return out;
}

/** A log with runs of identical lines shortened to their first two, a count, and their last. */
function elide(lines: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < lines.length; ) {
    let n = 1;
    while (lines[i + n] === lines[i]) n++;
    if (n > 4) out.push(lines[i], lines[i], `   . . . (${n - 3} more identical lines)`, lines[i]);
    else out.push(...lines.slice(i, i + n));
    i += n;
  }
  return out;
}

export function formatKernelUnwind(opts: KernelUnwindOptions, run: KernelUnwindRun): string {
  const modeName = opts.mode === 'protected' ? 'protected mode (kvm-arm.mode=protected)' : 'non-protected mode (kvm-arm.mode=nvhe)';
  const depthFlag = opts.scenario === 'call_chain' ? ` --depth ${opts.depth}` : '';
  const real = collapseRuns(run.real);
  const sim = collapseRuns(run.simulated);
  const width = Math.max(28, ...real.map((s) => s.length)) + 4;
  const rows = Array.from({ length: Math.max(real.length, sim.length) }, (_, i) => `  ${(real[i] ?? '').padEnd(width)}${sim[i] ?? ''}`);
  return [
    `The real hypervisor: Linux 6.12 with kernel/patches, ${opts.scenario}${depthFlag}, ${modeName}`,
    `booted in ${(run.bootMs / 1000).toFixed(2)} s; the machine was down ${(run.panicMs / 1000).toFixed(2)} s after the hypercall`,
    '',
    'Its console:',
    ...(run.log.block.length > 0 ? run.log.block : ['(no hypervisor panic report)']),
    '',
    `The simulated prediction (pkvm-check unwind --scenario ${opts.scenario} --mode ${opts.mode}${depthFlag}):`,
    ...elide(run.simLines),
    ...(run.simViolation ? [`(the simulation broke a property: ${run.simViolation})`] : []),
    '',
    'Side by side, innermost first (runs of one function collapsed):',
    `  ${'real'.padEnd(width)}simulated`,
    ...rows,
    '',
    'Properties of the real trace:',
    ...run.properties.map((p) => `  ${p.ok ? 'ok  ' : 'FAIL'} ${p.property}: ${p.detail}`),
    '',
  ].join('\n');
}
