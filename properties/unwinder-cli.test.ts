// `pkvm-check unwind` against the cover letter of "KVM nVHE Hypervisor stack unwinder" v5: same
// function sequence, same line format, and (our image links the sample's functions at the sample's
// addresses) the same lines; KASLR moves nothing in the printed trace; bad flags are exit 2.
import { afterEach, describe, expect, test, vi } from 'vitest';
import { fc } from '@fast-check/vitest';
import { main } from '../checker/cli/main';
import { runHyp } from '../checker/unwinder/run';

/** The v5 cover letter's sample log, without timestamps and the "kvm [371]: " prefix. */
const SAMPLE_HEAD = [
  'nVHE hyp panic at: [<ffff8000090a51d0>] __kvm_nvhe_recursive_death+0x10/0x34!',
  'Protected nVHE HYP call trace:',
  ' [<ffff8000090a5570>] __kvm_nvhe_hyp_panic+0xac/0xf8',
  ' [<ffff8000090a55cc>] __kvm_nvhe_hyp_panic_bad_stack+0x10/0x10',
  ' [<ffff8000090a51e4>] __kvm_nvhe_recursive_death+0x24/0x34',
];
const SAMPLE_RECURSION = ' [<ffff8000090a51e4>] __kvm_nvhe_recursive_death+0x24/0x34';
const SAMPLE_TAIL = [
  ' [<ffff8000090a51e4>] __kvm_nvhe_recursive_death+0x24/0x34',
  ' [<ffff8000090a4de4>] __kvm_nvhe___kvm_vcpu_run+0x30/0x40c',
  ' [<ffff8000090a7b64>] __kvm_nvhe_handle___kvm_vcpu_run+0x30/0x48',
  ' [<ffff8000090a78b8>] __kvm_nvhe_handle_trap+0xc4/0x128',
  ' [<ffff8000090a6864>] __kvm_nvhe___host_exit+0x64/0x64',
  '---- End of Protected nVHE HYP call trace ----',
];
const ENTRY = /^ \[<[0-9a-f]{16}>\] __kvm_nvhe_\w+\+0x[0-9a-f]+\/0x[0-9a-f]+$/;

/** Runs the CLI, capturing stdout and stderr. */
async function cli(...argv: string[]): Promise<{ code: number; out: string[]; err: string }> {
  const out: string[] = [];
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  const code = await main(['unwind', ...argv]);
  vi.restoreAllMocks();
  return { code, out: out.join('').split('\n').slice(0, -1), err };
}

describe('pkvm-check unwind', () => {
  afterEach(() => vi.restoreAllMocks());

  test('--format v5 prints the structure of the v5 cover-letter sample', async () => {
    const { code, out } = await cli('--scenario', 'recursive_death', '--mode', 'protected', '--page-size', '4096', '--format', 'v5');
    expect(code).toBe(0);
    expect(out.slice(0, SAMPLE_HEAD.length)).toEqual(SAMPLE_HEAD);
    expect(out.slice(-SAMPLE_TAIL.length)).toEqual(SAMPLE_TAIL);
    const middle = out.slice(SAMPLE_HEAD.length, -SAMPLE_TAIL.length);
    expect(middle.length).toBeGreaterThan(100);
    expect(middle.every((l) => l === SAMPLE_RECURSION)).toBe(true);
  });

  test('recursive_death, protected, 4K: panic line, header, hyp_panic, hyp_panic_bad_stack, recursion, at most 512 entries, footer', async () => {
    const { code, out } = await cli('--scenario', 'recursive_death', '--mode', 'protected', '--page-size', '4096');
    expect(code).toBe(0);
    expect(out[0]).toMatch(/^nVHE hyp panic at: \[<[0-9a-f]{16}>\] __kvm_nvhe_recursive_death\+0x[0-9a-f]+\/0x34!$/);
    expect(out[1]).toBe('nVHE call trace:');
    expect(out[2]).toContain('] __kvm_nvhe_hyp_panic+');
    expect(out[3]).toContain('] __kvm_nvhe_hyp_panic_bad_stack+');
    expect(out[4]).toContain('] __kvm_nvhe_recursive_death+');
    expect(out[5]).toContain('] __kvm_nvhe_recursive_death+');
    const entries = out.slice(2, -1);
    expect(entries.every((l) => ENTRY.test(l))).toBe(true);
    expect(entries.length).toBeLessThanOrEqual(512);
    expect(out.at(-1)).toBe('---[ end nVHE call trace ]---');
  });

  test('recursive_death, non-protected: the trace ends at __host_exit', async () => {
    for (const size of ['4096', '16384', '65536']) {
      const { code, out } = await cli('--scenario', 'recursive_death', '--mode', 'nonprotected', '--page-size', size, '--seed', '7');
      expect(code).toBe(0);
      expect(out.at(-2)).toMatch(/\] __kvm_nvhe___host_exit\+0x64\/0x64$/);
      expect(out.at(-1)).toBe('---[ end nVHE call trace ]---');
    }
  });

  test('KASLR and the stack placement change nothing in the printed trace', () => {
    const reference = runHyp({ scenario: 'recursive_death', mode: 'protected', page_size: 4096, depth: 0, seed: 0, corrupt: [] }, []).lines;
    fc.assert(
      fc.property(fc.nat(0xffffffff), fc.constantFrom('protected' as const, 'nonprotected' as const), (seed, mode) => {
        const run = runHyp({ scenario: 'recursive_death', mode, page_size: 4096, depth: 0, seed, corrupt: [] }, []);
        expect(run.lines).toEqual(reference);
      }),
      { seed: 0xca51, numRuns: 25 },
    );
  });

  test('--kernel names the pKVM in a first line; the log after it is the same for 6.12 and 6.16', async () => {
    const plain = await cli('--scenario', 'call_chain', '--depth', '5', '--seed', '3');
    for (const v of ['6.12', '6.16']) {
      const { code, out } = await cli('--scenario', 'call_chain', '--depth', '5', '--seed', '3', '--kernel', v);
      expect(code).toBe(0);
      expect(out[0]).toBe(`Simulated pKVM, Linux ${v} (the nVHE unwinder is the same in 6.12 and 6.16: docs/semantics.md §9)`);
      expect(out.slice(1)).toEqual(plain.out);
    }
  });

  test('bad flags are exit 2 with a one-line message', async () => {
    for (const argv of [
      [],
      ['--scenario', 'nope'],
      ['--scenario', 'recursive_death', '--mode', 'secure'],
      ['--scenario', 'recursive_death', '--page-size', '8192'],
      ['--scenario', 'recursive_death', '--depth', '-1'],
      ['--scenario', 'recursive_death', '--format', 'v4'],
      ['--scenario', 'recursive_death', '--inject', 'no-such-bug'],
      ['--scenario', 'recursive_death', '--bogus'],
      ['--scenario', 'recursive_death', '--kernel', '6.15'],
      ['--scenario', 'recursive_death', '--kernel'],
      ['--scenario', 'recursive_death', '--target', 'kernel', '--kernel', '6.16'],
    ]) {
      const { code, out, err } = await cli(...argv);
      expect(code, argv.join(' ')).toBe(2);
      expect(out).toEqual([]);
      expect(err.split('\n')[0]).toMatch(/^pkvm-check unwind: \S/);
    }
  });
});
