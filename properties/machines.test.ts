// The machine rotation of random runs (checker/machines.ts) and `--config FILE` for run and explore.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ROTATION, rotationParts } from '../checker/machines';
import { runSuite } from '../checker/suites';
import { encodeConfig, parseConfig } from '../checker/trace/config';
import { readConfigFile } from '../checker/trace/file';
import { InputError } from '../checker/vocabulary';
import { DEFAULT_CONFIG } from '../types/config';
import { hypLayout } from '../hyp/setup';

const tmp = () => mkdtempSync(join(tmpdir(), 'pkvm-check-machines-'));
const cli = (args: string[]) => {
  const r = spawnSync(process.execPath, [join(process.cwd(), 'bin/pkvm-check.js'), ...args], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout, err: r.stderr };
};

describe('the machine rotation', () => {
  test('every machine boots and reads back as a trace config; the default comes first', () => {
    expect(ROTATION[0].config).toBe(DEFAULT_CONFIG);
    for (const m of ROTATION) {
      expect(() => hypLayout(m.config), m.name).not.toThrow();
      expect(parseConfig(JSON.parse(encodeConfig(m.config)))).toEqual(m.config);
    }
    // Between them: a second region, memory above 4 GiB, a region start off a 2 MiB boundary.
    expect(ROTATION.some((m) => m.config.memory.length > 1)).toBe(true);
    expect(ROTATION.some((m) => m.config.memory.some(([first]) => first >= 2 ** 20))).toBe(true);
    expect(ROTATION.some((m) => m.config.memory.some(([first, nr]) => first % 512 !== 0 && (first + nr) % 512 !== 0))).toBe(true);
  });

  test('the runs split over the machines, the default first with the run seed and the larger part', () => {
    for (const runs of [1, 5, 6, 200, 12_000]) {
      const parts = rotationParts(runs, 42);
      expect(parts.reduce((n, p) => n + p.runs, 0)).toBe(runs);
      expect(parts[0]).toMatchObject({ seed: 42, machine: ROTATION[0] });
      for (const p of parts) expect(p.runs).toBeGreaterThan(0);
      for (const p of parts) expect(p.runs).toBeLessThanOrEqual(p.machine.maxRuns ?? runs);
    }
    const seeds = rotationParts(200, 42).map((p) => p.seed);
    expect(new Set(seeds).size).toBe(ROTATION.length);
    expect(rotationParts(200, 42)).toEqual(rotationParts(200, 42));
  });

  test('a rotated run adds up the runs, calls and coverage of its machines', () => {
    const opts = { runs: 24, seed: 5, maxSteps: 20, inject: null, outDir: tmp() };
    const whole = runSuite('ownership', opts);
    const parts = rotationParts(24, 5).map((p) => runSuite('ownership', { ...opts, runs: p.runs, seed: p.seed, ...(p.machine.prefix ? { prefix: p.machine.prefix } : {}) }, p.machine.config));
    expect(whole.ok).toBe(true);
    expect(whole.seed).toBe(5);
    expect(whole.runs).toBe(24);
    expect(whole.calls).toBe(parts.reduce((n, r) => n + r.calls, 0));
    const total = (r: typeof whole) => Object.values(r.coverage).reduce((n, row) => n + Object.values(row).reduce((a, b) => a + b, 0), 0);
    expect(total(whole)).toBe(whole.calls);
  });

  test('idmap-block-assumes-aligned-region is invisible on the default machine and caught by the rotation, its machine in the trace', () => {
    const opts = { runs: 200, seed: 42, maxSteps: 80, inject: 'idmap-block-assumes-aligned-region', outDir: tmp() };
    expect(runSuite('ownership', opts, DEFAULT_CONFIG).ok).toBe(true);
    const r = runSuite('ownership', opts);
    expect(r.ok).toBe(false);
    expect(r.counterexample).not.toBeNull();
    const trace = JSON.parse(readFileSync(r.counterexample ?? '', 'utf8')) as { config: unknown };
    expect(parseConfig(trace.config)).not.toEqual(DEFAULT_CONFIG);
  });
});

describe('--config FILE', () => {
  test('reads a trace-style config, and refuses a bad file in one line naming it', () => {
    const dir = tmp();
    const file = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    expect(readConfigFile(file('ok.json', '{ "memory": [[262144, 1024], [524288, 3072]], "pageSize": 4096 }')).memory).toEqual([[262144, 1024], [524288, 3072]]);
    for (const [name, text, why] of [
      ['broken.json', '{ "memory": [[1, 2]', /not JSON/],
      ['small.json', '{ "memory": [[262144, 100]] }', /cannot boot|boot on/],
      ['extra.json', '{ "memry": [] }', /unknown field/],
      ['array.json', '[]', /expected an object/],
    ] as const) {
      const f = file(name, text);
      expect(() => readConfigFile(f)).toThrow(InputError);
      expect(() => readConfigFile(f)).toThrow(why);
      expect(() => readConfigFile(f)).toThrow(f);
    }
    expect(() => readConfigFile(join(dir, 'missing.json'))).toThrow(/cannot read/);
  });

  test('run and explore use the machine, and exit 2 on a bad file', () => {
    const dir = tmp();
    const two = join(dir, 'two.json');
    writeFileSync(two, '{ "memory": [[262144, 1024], [524288, 3072]], "pageSize": 4096 }');
    const run = cli(['run', '--suite', 'ownership', '--config', two, '--inject', 'idmap-block-assumes-aligned-region', '--out', dir, '--reports', join(dir, 'rep'), '--json']);
    expect(run.status).toBe(1);
    const j = JSON.parse(run.out) as { suites: { counterexample: string; runs: number }[] };
    expect(JSON.parse(readFileSync(j.suites[0].counterexample, 'utf8'))).toMatchObject({ config: { memory: [[262144, 1024], [524288, 3072]] } });
    expect(readFileSync(join(dir, 'rep', 'summary.md'), 'utf8')).toContain(`--config ${two}`);
    const unaligned = join(dir, 'unaligned.json');
    writeFileSync(unaligned, '{ "memory": [[262528, 3900]] }');
    const explore = cli(['explore', '--config', unaligned, '--depth', '1', '--inject', 'idmap-block-assumes-aligned-region', '--out', dir]);
    expect(explore.status).toBe(1);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ "memory": [[262144, 100]] }');
    for (const cmd of ['run', 'explore']) {
      const r = cli([cmd, '--config', bad, '--out', dir, ...(cmd === 'run' ? ['--reports', join(dir, 'rep2')] : [])]);
      expect(r.status).toBe(2);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).toContain(bad);
    }
  });
});
