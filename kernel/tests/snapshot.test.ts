// The host stage-2 snapshot on the real kernel (kernel/patches/0003): the snapshot suite runs there
// with the same generators and checks as on the simulation, and both seed defects, built into the
// kernel from kernel/bugs/, are caught with short traces that fail there again on replay.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { kernelImage } from '../../checker/kernel/setup';
import { makeLockstep } from '../../checker/suites';
import { resolveSnapshotStep } from '../../checker/snapshot/generators';
import { hostShape } from '../../checker/snapshot/kernel';
import { DEFAULT_CONFIG } from '../../types/config';
import { explain, pkvmCheck } from './cli';

const out = mkdtempSync(join(tmpdir(), 'pkvm-check-snapshot-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

let imageDir = '';
beforeAll(() => {
  imageDir = kernelImage({ progress: 'ignore' });
});

describe('the snapshot on the correct 6.12 kernel', () => {
  test('a random snapshot run agrees with the model at every call, copies included', () => {
    const r = pkvmCheck('run', '--suite', 'snapshot', '--target', 'kernel', '--runs', '100', '--json', '--out', out, '--reports', join(out, 'reports'));
    expect(r.status, explain(r)).toBe(0);
    const json = JSON.parse(r.stdout) as { suites: { coverage: Record<string, Record<string, number>> }[] };
    const snap = json.suites[0].coverage.__pkvm_host_stage2_snapshot;
    // Copies succeed (a handle is the copy's PGD), and every failure the design names is reached.
    expect(snap.handle).toBeGreaterThan(50);
    for (const errno of ['-EPERM', '-ENOMEM', '-EINVAL']) expect(snap[errno], errno).toBeGreaterThan(0);
  });

  test('clean snapshots in a row succeed, each copy checked against the host stage-2', () => {
    const ls = makeLockstep(null, DEFAULT_CONFIG, { name: 'kernel', imageDir });
    try {
      ls.reset();
      const ms: number[] = [];
      for (let i = 0; i < 20; i++) {
        // Scenario "clean" (draw 0 < its weight). The first two calls teach the generator the
        // kernel's PGD size and its own table pages; from then on each copy succeeds.
        const step = resolveSnapshotStep([0, 7 * i + 1, 0, 1, 0, 0, 0, 0, 0, 0], ls.model, ls.config, hostShape(ls));
        const started = performance.now();
        const failure = ls.step(step, i);
        ms.push(performance.now() - started);
        expect(failure).toBeNull();
        if (i > 1) expect(ls.results[i], JSON.stringify(step)).toBeGreaterThan(0);
      }
      const steady = ms.slice(2).sort((a, b) => a - b);
      console.log(`snapshot on the kernel: median ${steady[steady.length >> 1].toFixed(1)} ms per call (host writes, the call, the copy read back and checked)`);
      expect(ls.finish()).toBeNull();
    } finally {
      ls.close();
    }
  });
});

// The posted v4 defects (SEMANTICS §5), built into the kernel: caught, with a trace that fails on
// the kernel again and replays clean on the correct simulation.
describe.each(['snapshot-used-pages-off-by-one', 'snapshot-setup-rollback'])('kernel bug %s', (bug) => {
  test('is caught by the snapshot suite, and its trace replays on the kernel', () => {
    const dir = join(out, bug);
    const r = pkvmCheck('run', '--suite', 'snapshot', '--target', 'kernel', '--runs', '100', '--inject', bug, '--json', '--out', dir, '--reports', join(dir, 'reports'));
    expect(r.status, explain(r)).toBe(1);
    const traces = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(traces).toHaveLength(1);
    const trace = join(dir, traces[0]);
    const steps = (JSON.parse(readFileSync(trace, 'utf8')) as { steps: unknown[] }).steps.length;
    console.log(`${bug}: shrunk trace of ${steps} step(s)`);
    expect(steps).toBeLessThanOrEqual(3);
    const again = pkvmCheck('replay', trace, '--target', 'kernel', '--inject', bug);
    expect(again.status, explain(again)).toBe(1);
    const clean = pkvmCheck('replay', trace, '--inject', 'none');
    expect(clean.status, explain(clean)).toBe(0);
  });
});
