// The real-kernel target end to end: Linux 6.12's hypervisor under QEMU, driven by the same
// generators, checks, traces and replay as the simulation. The kernel is built (or reused from the
// cache) by kernel/setup.sh before the first test.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { kernelImage } from '../../checker/kernel/setup';
import { KERNEL_CALLS } from '../../checker/targets/kernel';
import type { CallName } from '../../types/calls';
import { explain, pkvmCheck } from './cli';

const out = mkdtempSync(join(tmpdir(), 'pkvm-check-kernel-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

beforeAll(() => {
  kernelImage();
});

/** The committed traces in `dir` whose every call the kernel target runs. */
function kernelTraces(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => join(dir, f))
    .filter((f) => (JSON.parse(readFileSync(f, 'utf8')) as { steps: { call: CallName }[] }).steps.every((s) => KERNEL_CALLS.includes(s.call)));
}

describe('the correct 6.12 kernel', () => {
  // The directed traces of every errno path of 6.12 (conformance/6.12), panics included: a panic
  // is sent, its report checked, and a fresh machine replays the calls before it to go on.
  test('every conformance trace of 6.12 that the kernel target runs replays clean on it', () => {
    const traces = kernelTraces('conformance/6.12');
    expect(traces.length).toBeGreaterThan(5);
    const r = pkvmCheck('replay', ...traces, '--target', 'kernel', '--json');
    expect(r.status, explain(r)).toBe(0);
  });

  // Saved traces are written for 6.16 (no config.kernel): the ones 6.12 can run are those whose
  // calls the kernel target runs and whose expectations hold for 6.12 in the model.
  test('every saved trace that 6.12 can run replays clean on it', () => {
    const candidates = kernelTraces('counterexamples');
    const onModel = pkvmCheck('replay', ...candidates, '--kernel', '6.12', '--inject', 'none', '--json');
    const traces = (JSON.parse(onModel.stdout) as { traces: { file: string; ok: boolean }[] }).traces.filter((t) => t.ok).map((t) => t.file);
    expect(traces.length, explain(onModel)).toBeGreaterThan(5);
    const r = pkvmCheck('replay', ...traces, '--target', 'kernel', '--inject', 'none', '--json');
    expect(r.status, explain(r)).toBe(0);
    expect((JSON.parse(r.stdout) as { traces: unknown[] }).traces).toHaveLength(traces.length);
  });

  test('a random ownership run agrees with the model at every call', () => {
    const r = pkvmCheck('run', '--suite', 'ownership', '--target', 'kernel', '--runs', '200', '--json', '--out', out, '--reports', join(out, 'reports'));
    expect(r.status, explain(r)).toBe(0);
    const json = JSON.parse(r.stdout) as { calls: number; suites: { coverage: Record<string, Record<string, number>> }[] };
    expect(json.calls).toBeGreaterThan(5_000);
    // Every ownership call the kernel runs succeeded at least once.
    for (const call of KERNEL_CALLS.filter((c) => c !== '__pkvm_host_stage2_snapshot')) expect(json.suites[0].coverage[call]?.['0'], call).toBeGreaterThan(0);
  });
});

// Catalogued bugs that exist as kernel patches (kernel/bugs/): each must be caught on the real kernel,
// with a trace that fails there again and replays clean on the correct simulation.
describe.each(['unshare-ignores-pins', 'hyp-keeps-el2-mapping', 'annotation-wrong-owner'])('kernel bug %s', (bug) => {
  test('is caught, and its trace replays', () => {
    const dir = join(out, bug);
    const r = pkvmCheck('run', '--suite', 'ownership', '--target', 'kernel', '--runs', '200', '--inject', bug, '--json', '--out', dir, '--reports', join(dir, 'reports'));
    expect(r.status, explain(r)).toBe(1);
    const trace = (JSON.parse(r.stdout) as { suites: { counterexample: string | null }[] }).suites[0].counterexample;
    expect(trace, explain(r)).not.toBeNull();
    const onKernel = pkvmCheck('replay', trace!, '--target', 'kernel');
    expect(onKernel.status, explain(onKernel)).toBe(1);
    const onSim = pkvmCheck('replay', trace!, '--target', 'sim', '--inject', 'none');
    expect(onSim.status, explain(onSim)).toBe(0);
  });
});
