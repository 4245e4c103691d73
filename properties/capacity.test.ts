// Capacity edges (issue 15.7): random sequences that start with the 255 VM slots, the 128-entry host
// fault log or a page's pins filled to one short of full, full, or one past full (checker/capacity.ts).
// The pins are a u16 of 65,535 on the kernel: they are filled on a machine with a small simulation-only
// pinLimit (the rotation's pin-capacity machine, checker/machines.ts).
import { describe, expect, test } from 'vitest';
import { capacityOf, capacityPrefixArb, fillSteps, pinPrefixArb, type Capacity } from '../checker/capacity';
import { ROTATION, rotationParts, SMALL_PIN_LIMIT } from '../checker/machines';
import { makeLockstep, runSuite } from '../checker/suites';
import { runSteps } from '../checker/sequence';
import { configFor } from '../checker/targets/spec';
import { InputError, type TraceStep } from '../checker/vocabulary';
import { DEFAULT_CONFIG, FAULT_LOG_SIZE, type MachineConfig } from '../types/config';
import { HYP_PANIC, KERNEL_VERSIONS, KERNELS, pinLimit } from '../types/kernel';
import { SEED } from './seed';
import { suiteFailure, TRACE_DIR } from './traced';

const PINS: MachineConfig = { ...DEFAULT_CONFIG, pinLimit: SMALL_PIN_LIMIT };

describe('capacity edges', () => {
  test.each([
    ['vm-slots', DEFAULT_CONFIG, '-ENOMEM'],
    ['fault-log', DEFAULT_CONFIG, '-EPERM'],
    ['pins', PINS, 'panic'],
  ] as const)('filling %s: every step up to full succeeds as the model says, the one past full gets %s', (capacity: Capacity, config, past) => {
    const ls = makeLockstep(null, config);
    try {
      const steps = fillSteps(config, capacity, capacityOf(config, capacity) + 1).map((s) => s.fixed!);
      const out = runSteps(ls, steps);
      expect(out.failure).toBeNull();
      const ok = (r: number) => (capacity === 'vm-slots' ? r >= 0x1000 : capacity === 'fault-log' ? r === -1 : r === 0);
      expect(ls.results.slice(0, -1).every(ok)).toBe(true);
      expect(ls.coverage[steps.at(-1)!.call]?.[past] ?? 0).toBeGreaterThan(0);
    } finally {
      ls.close();
    }
  });

  test('the ownership properties hold after each capacity is filled to full - 1, full and full + 1', ({ task }) => {
    const r = runSuite('ownership', { runs: 60, seed: SEED, maxSteps: 30, inject: null, outDir: TRACE_DIR, prefix: capacityPrefixArb }, DEFAULT_CONFIG);
    task.meta.suiteResult = r;
    if (r.failure) expect.fail(suiteFailure(r));
    // One past full was reached, and random steps ran there: VM creation refused, faults past the log.
    expect(r.coverage.__pkvm_init_vm?.['-ENOMEM'] ?? 0).toBeGreaterThan(60 / 6);
    expect(r.coverage.host_access?.['-EPERM'] ?? 0).toBeGreaterThan((60 / 6) * (FAULT_LOG_SIZE + 1));
    expect(r.coverage.__pkvm_teardown_vm?.['0'] ?? 0).toBeGreaterThan(0);
  });

  test('the ownership properties hold after a page is pinned to pinLimit - 1, pinLimit and pinLimit + 1', ({ task }) => {
    const runs = 60;
    const r = runSuite('ownership', { runs, seed: SEED, maxSteps: 30, inject: null, outDir: TRACE_DIR, prefix: pinPrefixArb }, PINS);
    task.meta.suiteResult = r;
    if (r.failure) expect.fail(suiteFailure(r));
    // A third of the prefixes pin one past the limit; random pins of a full page panic as well, and
    // the random steps unpin, refuse to unshare a pinned page, and pin again below the limit.
    expect(r.coverage.hyp_pin_shared_mem?.panic ?? 0).toBeGreaterThan(runs / 3);
    expect(r.coverage.hyp_pin_shared_mem?.['0'] ?? 0).toBeGreaterThan(runs * (SMALL_PIN_LIMIT - 1));
    expect(r.coverage.hyp_unpin_shared_mem?.['0'] ?? 0).toBeGreaterThan(0);
    expect(r.coverage.__pkvm_host_unshare_hyp?.['-EBUSY'] ?? 0).toBeGreaterThan(0);
  });
});

describe('pinLimit: a simulation-only stand-in for the u16 pin count', () => {
  test("without it a page holds the kernel's 65,535 pins; the pin-capacity machine of the rotation sets it", () => {
    for (const k of KERNEL_VERSIONS) expect(pinLimit({ ...DEFAULT_CONFIG, kernel: k })).toBe(KERNELS[k].maxPins);
    expect(capacityOf(DEFAULT_CONFIG, 'pins')).toBe(0xffff);
    expect(capacityOf(PINS, 'pins')).toBe(SMALL_PIN_LIMIT);
    expect(ROTATION.find((m) => m.name === 'pin-capacity')).toMatchObject({ config: PINS, prefix: pinPrefixArb });
  });

  test("the pin-capacity machine takes half of full-capacity's share: the other machines' parts are as before", () => {
    for (const runs of [1, 7, 24, 200, 12_000]) {
      const parts = new Map(rotationParts(runs, 42).map((p) => [p.machine.name, p.runs]));
      const seventh = Math.floor(runs / 7);
      const filled = Math.min(seventh, 40);
      expect(parts.get('default')).toBe(runs - 3 * seventh - filled);
      expect(parts.get('full-capacity') ?? 0).toBe(filled - Math.floor(filled / 2));
      expect(parts.get('pin-capacity') ?? 0).toBe(Math.floor(filled / 2));
    }
  });

  test('the limit-th pin of a page succeeds and the next panics, in model and hyp alike', () => {
    const ls = makeLockstep(null, PINS);
    try {
      const [share, ...pins] = fillSteps(PINS, 'pins', SMALL_PIN_LIMIT).map((s) => s.fixed!);
      const { pfn } = share.args as { pfn: number };
      const pin: TraceStep = { call: 'hyp_pin_shared_mem', args: { pfn, nr_pages: 1 } };
      const unpin: TraceStep = { call: 'hyp_unpin_shared_mem', args: { pfn, nr_pages: 1 } };
      const steps: TraceStep[] = [share, ...pins, { ...pin, expect: HYP_PANIC }, { ...unpin, expect: 0 }, { ...pin, expect: 0 }, { ...pin, expect: HYP_PANIC }];
      expect(runSteps(ls, steps).failure).toBeNull();
      expect(ls.model.pages.get(pfn)?.pins).toBe(SMALL_PIN_LIMIT);
    } finally {
      ls.close();
    }
  });

  test("the kernel target refuses a pinLimit other than the kernel's, in one line", () => {
    const kernel = { name: 'kernel', imageDir: '' } as const;
    expect(() => configFor(kernel, PINS)).toThrow(InputError);
    expect(() => configFor(kernel, PINS)).toThrow(/^config\.pinLimit: 4 is a simulation-only pin limit; the kernel target's pages hold 65535 pins/);
    expect(configFor(kernel, { ...DEFAULT_CONFIG, pinLimit: 0xffff }).pinLimit).toBe(0xffff);
    expect(configFor({ name: 'sim' }, PINS)).toBe(PINS);
  });
});
