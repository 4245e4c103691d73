import { describe, expect, test } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OWNERSHIP_BUGS } from '../checker/bugs/ownership';
import { runSuite } from '../checker/suites';
import { SEED } from './seed';
import { MAX_VMS } from '../types/config';
import { suiteFailure, TRACE_DIR } from './traced';
import { DEFAULT_MAX_STEPS, DEFAULT_RUNS, DEFAULT_SEED } from '../checker/cli/run';

/** Traces of the injected bugs, which are expected: a temporary folder (removed after the run). */
const out = () => mkdtempSync(join(tmpdir(), 'pkvm-check-'));

/**
 * Every result docs/semantics.md §4-§6 gives each call that a correct system can produce in the
 * default version (one page is never a mixed range, so share/unshare_hyp never see -EINVAL).
 */
const EXPECTED: Record<string, string[]> = {
  __pkvm_host_share_hyp: ['0', '-EPERM'],
  __pkvm_host_unshare_hyp: ['0', '-EPERM', '-EBUSY'],
  __pkvm_host_donate_hyp: ['0', '-EPERM', '-EINVAL'],
  __pkvm_hyp_donate_host: ['0', '-EPERM', '-EINVAL'],
  __pkvm_host_share_ffa: ['0', '-EPERM', '-EINVAL'],
  __pkvm_host_unshare_ffa: ['0', '-EPERM', '-EINVAL'],
  hyp_pin_shared_mem: ['0', '-EPERM', '-EINVAL'],
  hyp_unpin_shared_mem: ['0', 'panic'],
  __pkvm_host_share_guest: ['0', '-EPERM', '-EINVAL', '-ERANGE'],
  __pkvm_host_unshare_guest: ['0', '-EINVAL', '-ENOENT', '-E2BIG', '-ERANGE'],
  __pkvm_host_relax_perms_guest: ['0', '-EINVAL', 'panic'],
  __pkvm_host_wrprotect_guest: ['0', '-EINVAL', 'panic'],
  __pkvm_host_test_clear_young_guest: ['0', '1', '-EINVAL', 'panic'],
  __pkvm_host_mkyoung_guest: ['0', '-EINVAL', 'panic'],
  __pkvm_vcpu_load: ['0'],
  __pkvm_vcpu_put: ['0'],
  __pkvm_init_vm: ['handle', '-ENOMEM', '-EINVAL'],
  __pkvm_teardown_vm: ['0', '-ENOENT', 'panic'],
  host_access: ['0', '-EPERM', '-ERANGE'],
};

/** The steps a bug's trace fills a capacity with before the few that show it. */
const FILLED: Record<string, number> = { 'vm-slots-one-short': MAX_VMS - 1 };

describe('ownership: model and hyp in lockstep', () => {
  test('every invariant holds on the correct implementation, and every result is produced', ({ task }) => {
    const r = runSuite('ownership', { runs: 2000, seed: SEED, maxSteps: 80, inject: null, outDir: TRACE_DIR });
    task.meta.suiteResult = r;
    if (r.failure) expect.fail(suiteFailure(r));
    expect(r.calls).toBeGreaterThan(50_000);
    for (const [call, results] of Object.entries(EXPECTED)) for (const res of results) expect(r.coverage[call]?.[res] ?? 0, `${call} -> ${res}`).toBeGreaterThan(0);
  });

  // "The default run": the CLI's defaults, seed included, so this never depends on PKVM_CHECK_SEED.
  test.each(OWNERSHIP_BUGS.map((b) => b.id))('the default run catches bug %s with a short trace', (id) => {
    const r = runSuite('ownership', { runs: DEFAULT_RUNS, seed: DEFAULT_SEED, maxSteps: DEFAULT_MAX_STEPS, inject: id, outDir: out() });
    expect(r.ok).toBe(false);
    expect(r.counterexample).not.toBeNull();
    // A bug at a capacity's edge needs the capacity filled first (checker/capacity.ts): those steps too.
    expect(r.counterexampleSteps).toBeLessThanOrEqual(8 + (FILLED[id] ?? 0));
    // Calls and coverage both stop at the first failing sequence: shrinking's re-runs are not counted.
    const covered = Object.values(r.coverage).reduce((n, row) => n + Object.values(row).reduce((a, b) => a + b, 0), 0);
    expect(covered).toBe(r.calls);
  });
});
