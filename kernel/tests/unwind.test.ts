// The real hypervisor's stack dump (kernel/patches/0002, checker/kernel/unwind.ts): each scenario
// panics a fresh 6.12 machine, and its console's call trace must have the simulated unwinder's
// properties. Then the checks themselves must catch a broken report.
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { parsePanicLog } from '../../checker/kernel/panic-log';
import { kernelImage } from '../../checker/kernel/setup';
import { checkRealTrace, textSymbols, type HypSymbol } from '../../checker/kernel/unwind';
import { explain, pkvmCheck, type CliRun } from './cli';
import { P } from '../../checker/properties';

let symbols: HypSymbol[] = [];
beforeAll(() => {
  symbols = textSymbols(join(kernelImage(), 'vmlinux'));
});

/** The console lines the command printed (the real report, verbatim). */
const consoleBlock = (r: CliRun): string[] => {
  const lines = r.stdout.split('\n');
  const from = lines.indexOf('Its console:') + 1;
  return lines.slice(from, lines.indexOf('', from));
};
/** The trace entries of a console block, timestamps dropped. */
const entries = (block: readonly string[]): string[] => block.map((l) => /kvm \[\d+\]: ( \[<.*)$/.exec(l)?.[1]).filter((l): l is string => l !== undefined);

const runs: Record<string, CliRun> = {};
const unwind = (...args: string[]): CliRun => (runs[args.join(' ')] ??= pkvmCheck('unwind', '--target', 'kernel', ...args));

describe.each(['protected', 'nonprotected'])('recursive_death, %s mode', (mode) => {
  test('the real trace has every property, and the simulated one is printed beside it', () => {
    const r = unwind('--scenario', 'recursive_death', '--mode', mode);
    expect(r.status, explain(r)).toBe(0);
    const block = consoleBlock(r);
    expect(block.some((l) => /kvm \[\d+\]: nVHE call trace:$/.test(l)), explain(r)).toBe(true);
    expect(block.some((l) => /kvm \[\d+\]: ---\[ end nVHE call trace \]---$/.test(l)), explain(r)).toBe(true);
    const trace = entries(block);
    expect(trace[0]).toMatch(/__kvm_nvhe_hyp_panic\+/);
    expect(trace[1]).toMatch(/__kvm_nvhe_hyp_panic_bad_stack\+/);
    expect(trace.at(-1)).toMatch(/__kvm_nvhe___host_exit\+/);
    expect(r.stdout).toContain(`The simulated prediction (pkvm-check unwind --scenario recursive_death --mode ${mode})`);
    expect(r.stdout).not.toContain('FAIL');
  });
});

test('both modes print the same return addresses (the same code unwound, by EL2 or by the host)', () => {
  const [p, n] = ['protected', 'nonprotected'].map((m) => new Set(entries(consoleBlock(unwind('--scenario', 'recursive_death', '--mode', m)))));
  expect([...n].sort()).toEqual([...p].sort());
});

test.each(['protected', 'nonprotected'])('call_chain --depth 5, %s mode: five frames of the recursion', (mode) => {
  const r = unwind('--scenario', 'call_chain', '--depth', '5', '--mode', mode);
  expect(r.status, explain(r)).toBe(0);
  expect(consoleBlock(r)[0]).toMatch(/nVHE hyp BUG at: arch\/arm64\/kvm\/hyp\/nvhe\/pkvm_check_stack\.c:\d+!$/);
  expect(entries(consoleBlock(r)).filter((l) => l.includes('__kvm_nvhe_call_chain+'))).toHaveLength(5);
});

test('flags the kernel target cannot honour are usage errors, before anything boots', () => {
  for (const args of [
    ['--scenario', 'recursive_death', '--depth', '3'],
    ['--scenario', 'call_chain', '--depth', '65'],
    ['--scenario', 'call_chain', '--format', 'v5'],
    ['--scenario', 'call_chain', '--page-size', '16384'],
  ]) {
    const r = pkvmCheck('unwind', '--target', 'kernel', ...args);
    expect(r.status, explain(r)).toBe(2);
  }
});

describe('the checks catch a broken report', () => {
  const opts = { scenario: 'recursive_death', mode: 'protected', depth: 0 } as const;
  const failed = (console: readonly string[]): string[] =>
    checkRealTrace(opts, parsePanicLog(console.join('\n')), symbols)
      .filter((p) => !p.ok)
      .map((p) => p.property);
  const real = (): string[] => consoleBlock(unwind('--scenario', 'recursive_death', '--mode', 'protected'));
  const edit = (block: string[], match: RegExp, by: (l: string) => string | null): string[] =>
    block.flatMap((l) => {
      if (!match.test(l)) return [l];
      const out = by(l);
      return out === null ? [] : [out];
    });

  test('the real report passes', () => expect(failed(real())).toEqual([]));
  test('a trace that stops short of __host_exit', () => expect(failed(edit(real(), /__host_exit\+/, () => null))).toEqual([P.chainToHostExit]));
  test('a frame lost from the middle of the chain', () => expect(failed(edit(real(), /handle___pkvm_check_stack\+/, () => null))).toEqual([P.chainToHostExit]));
  test('an address that is not its symbol', () =>
    expect(failed(edit(real(), /handle_trap\+/, (l) => l.replace(/\[<([0-9a-f]+)>\]/, (_, a: string) => `[<${(BigInt(`0x${a}`) + 4n).toString(16)}>]`)))).toEqual([P.symbolsMatchVmlinux]));
  test('a line out of format', () => expect(failed(edit(real(), /handle_trap\+/, (l) => l.replace(' [<', '[<')))).toContain(P.lineFormat));
  test('no end marker', () => expect(failed(edit(real(), /end nVHE call trace/, () => null))).toContain(P.panicReported));
  test('an overflow without hyp_panic_bad_stack', () => expect(failed(edit(real(), /hyp_panic_bad_stack\+/, () => null))).toContain(P.overflowPath));
  test('more entries than the protected buffer holds', () => {
    const block = real();
    const rec = block.find((l) => /:  \[<\w+>\] __kvm_nvhe_recursive_death\+/.test(l)) ?? '';
    const at = block.indexOf(rec);
    expect(failed([...block.slice(0, at), ...Array<string>(520).fill(rec), ...block.slice(at)])).toEqual([P.entriesBounded, P.chainToHostExit]);
  });
});
