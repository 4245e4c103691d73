// The command-line contract (CONTRACT.md): exit codes, one-line errors, JSON shapes, determinism.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { P } from '../checker/properties';

const cli = (args: string[], cwd = process.cwd()) => {
  const r = spawnSync(process.execPath, [join(process.cwd(), 'bin/pkvm-check.js'), ...args], { cwd, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const tmp = () => mkdtempSync(join(tmpdir(), 'pkvm-check-cli-'));

describe('pkvm-check command line', () => {
  test('bugs lists every catalogued bug as "id  description"', () => {
    const r = cli(['bugs']);
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(6);
    for (const l of lines) expect(l).toMatch(/^[a-z0-9-]+ {2,}\S/);
  });

  test('run --json: the CONTRACT shape, and the same seed gives the same output but for durationMs', () => {
    const dir = tmp();
    const a = cli(['run', '--suite', 'ownership', '--runs', '30', '--seed', '7', '--json', '--reports', join(dir, 'r1')]);
    const b = cli(['run', '--suite', 'ownership', '--runs', '30', '--seed', '7', '--json', '--reports', join(dir, 'r2')]);
    expect(a.code).toBe(0);
    const ja = JSON.parse(a.out);
    const jb = JSON.parse(b.out);
    expect(Object.keys(ja)).toEqual(['ok', 'seed', 'inject', 'suites', 'calls', 'durationMs']);
    expect(ja.suites[0]).toMatchObject({ name: 'ownership', runs: 30, ok: true, counterexample: null, failure: null });
    delete ja.durationMs;
    delete jb.durationMs;
    expect(ja).toEqual(jb);
  });

  test('an injected bug: run exits 1 and writes a trace; replay fails with the bug and passes without', () => {
    const dir = tmp();
    const r = cli(['run', '--suite', 'ownership', '--inject', 'unshare-ignores-pins', '--out', dir, '--reports', join(dir, 'rep'), '--json']);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out);
    expect(j.suites[0].failure.property).toBe(P.resultsAgree);
    const [trace] = readdirSync(dir).filter((f) => f.endsWith('.json'));
    const withBug = cli(['replay', join(dir, trace)]);
    expect(withBug.code).toBe(1);
    expect(withBug.out).toMatch(/FAIL at step \d+: results-agree: __pkvm_host_unshare_hyp: model returned -EBUSY, hyp returned 0/);
    expect(cli(['replay', join(dir, trace), '--inject', 'none']).code).toBe(0);
  });

  test.each([
    ['not JSON', '{ "format": ', /bad\.json: not JSON/],
    ['another format', '{ "format": "pkvm-check/trace@9", "steps": [] }', /bad\.json: field "format"/],
    ['an unknown call', '{ "format": "pkvm-check/trace@1", "steps": [{ "call": "__pkvm_host_frobnicate", "args": {} }] }', /bad\.json: step 1: field "call"/],
    ['a wrong type', '{ "format": "pkvm-check/trace@1", "steps": [{ "call": "host_access", "args": { "pfn": "x", "write": true } }] }', /bad\.json: step 1: field "args\.pfn"/],
  ])('replay of a trace with %s: exit 2, one line, no stack trace', (_, text, message) => {
    const dir = tmp();
    writeFileSync(join(dir, 'bad.json'), text);
    const r = cli(['replay', join(dir, 'bad.json')]);
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(message);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  test.each([
    [['run', '--runs', 'many']],
    [['run', '--frobnicate']],
    [['run', '--suite', 'nonsense']],
    [['run', '--inject', 'no-such-bug']],
    [['replay']],
    [['no-such-command']],
  ])('bad usage %j: exit 2 and nothing written', (args) => {
    const dir = tmp();
    const r = cli(args, dir); // run from an empty directory: counterexamples/ and reports/ must not appear
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/pkvm-check/);
    expect(readdirSync(dir)).toEqual([]);
  });
});
