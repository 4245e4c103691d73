// The benchmark module on a tiny workload: the `bench --json` object has every CONTRACT field, with
// finite positive numbers. No timing is asserted (the figures themselves are `npm run bench`'s job).
import { describe, expect, it } from 'vitest';
import { availableBugs, benchJson, formatBench, runBench, TINY_BENCH } from '../bench/measure';
import { CATALOG } from '../checker/bugs/catalog';
import { benchCommand } from '../bench/cli';
import { UsageError } from '../checker/cli/usage';
import { InputError } from '../checker/vocabulary';

describe('bench', () => {
  it('produces the CONTRACT fields as finite positive numbers on a tiny workload', () => {
    const bugs = availableBugs().slice(0, 2);
    const json = benchJson(runBench({ ...TINY_BENCH, bugs })) as Record<string, unknown>;
    for (const field of ['callsPerSecond', 'hypOnlyCallsPerSecond', 'modelOnlyCallsPerSecond', 'costRatioLargeVsSmallMemory']) {
      const v = json[field];
      expect(typeof v, field).toBe('number');
      expect(Number.isFinite(v as number) && (v as number) > 0, `${field} = ${String(v)}`).toBe(true);
    }
    const ttb = json.timeToBugMs as Record<string, number>;
    expect(typeof ttb).toBe('object');
    for (const [id, ms] of Object.entries(ttb)) {
      expect(CATALOG.some((b) => b.id === id), id).toBe(true);
      expect(Number.isFinite(ms) && ms > 0, `${id}: ${ms}`).toBe(true);
    }
    expect(Object.keys(json.bugs as object).sort()).toEqual([...bugs].sort());
    // The object survives a JSON round trip unchanged (what `bench --json` prints).
    expect(JSON.parse(JSON.stringify(json)).callsPerSecond).toBe(json.callsPerSecond);
  });

  it('rejects unknown flags as a usage error, and a version it does not model', async () => {
    await expect(benchCommand(['--bogus'])).rejects.toBeInstanceOf(UsageError);
    await expect(benchCommand(['--kernel', '6.15'])).rejects.toBeInstanceOf(InputError);
    await expect(benchCommand(['--kernel'])).rejects.toBeInstanceOf(UsageError);
  });

  it('--kernel reaches what the bench runs: the result names it, and a 6.16-only bug is not found on 6.12', () => {
    const bugs = ['guest-share-skips-host-check'];
    const on = (kernel?: '6.12' | '6.16') => runBench({ ...TINY_BENCH, sequences: 2, bugRuns: 100, maxSteps: 40, bugs, ...(kernel ? { kernel } : {}) });
    const old = on('6.12');
    expect(old.kernel).toBe('6.12');
    expect(benchJson(old).kernel).toBe('6.12');
    expect(formatBench(old).split('\n')[0]).toBe('pKVM 6.12 (simulated)');
    // 6.12 has no __pkvm_host_share_guest: the call answers not-supported and the bug is never reached.
    expect(old.bugs['guest-share-skips-host-check'].found).toBe(0);
    const dflt = on();
    expect(dflt.kernel).toBe('6.16');
    expect(dflt.bugs['guest-share-skips-host-check'].found).toBe(1);
  });
});
