// The gate as a process (issue 12): a failure never exits 0 whatever happens to stdout, output
// locations are checked before anything runs, hostile trace files are one line and exit 2, signals
// leave a summary, and explore says how it stopped. Each test spawns the real binary.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

const BIN = join(process.cwd(), 'bin/pkvm-check.js');
const cli = (args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? process.cwd(), env: { ...process.env, ...opts.env }, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
/**
 * A shell pipeline's status with pipefail: the status of the CLI, not of the reader. A reader that
 * exits at once (`true`) has closed the pipe before the CLI (half a second to start) writes: EPIPE.
 */
const piped = (args: string, reader: string, cwd: string) =>
  spawnSync('bash', ['-c', `set -o pipefail; ${JSON.stringify(process.execPath)} ${BIN} ${args} | ${reader} > /dev/null`], { cwd, encoding: 'utf8' }).status;
const tmp = () => mkdtempSync(join(tmpdir(), 'pkvm-gate-'));
const oneLine = (err: string) => {
  expect(err.trim().split('\n'), err).toHaveLength(1);
  expect(err).not.toMatch(/\n\s+at /);
};

describe('a failure never exits 0', () => {
  test('a failing run or replay whose reader stops early still exits 1', () => {
    const dir = tmp();
    const run = '--suite ownership --inject block-not-split --out ce --reports rep';
    expect(piped(`run ${run}`, 'true', dir)).toBe(1);
    expect(piped(`run ${run} --json`, 'head -c 10', dir)).toBe(1);
    const [trace] = readdirSync(join(dir, 'ce'));
    expect(piped(`replay ce/${trace}`, 'true', dir)).toBe(1);
    expect(piped(`run --suite ownership --runs 5 --reports rep`, 'true', dir)).toBe(0);
  });

  test('stdout that cannot be written (/dev/full): one line and exit 2, or 1 when the run failed', () => {
    const dir = tmp();
    const status = (args: string) => spawnSync('bash', ['-c', `${JSON.stringify(process.execPath)} ${BIN} ${args} > /dev/full`], { cwd: dir, encoding: 'utf8' });
    const passing = status('run --suite ownership --runs 5 --reports rep');
    expect(passing.status).toBe(2);
    expect(passing.stderr).toBe('pkvm-check: cannot write to standard output (ENOSPC)\n');
    expect(status('run --suite ownership --inject block-not-split --out ce --reports rep').status).toBe(1);
  });
});

describe('output locations are checked before anything runs', () => {
  test.each([
    ['--out naming a file', ['--out', 'file'], /^pkvm-check run: --out: file is not a directory$/],
    ['--reports below a file', ['--reports', 'file/reports'], /^pkvm-check run: --reports: cannot create file\/reports: .*\/file is not a directory$/],
    ['--out ""', ['--out', ''], /^pkvm-check run: --out: expected a directory, got an empty string$/],
    ['--reports ""', ['--reports', ''], /^pkvm-check run: --reports: expected a directory, got an empty string$/],
    ['--out in a directory nothing can be created in', ['--out', '/proc/pkvm-check'], /^pkvm-check run: --out: cannot write into \/proc \(\w+\)$/],
  ])('%s: exit 2, one line (and the usage after a usage error), nothing written', (_, flags, message) => {
    const dir = tmp();
    writeFileSync(join(dir, 'file'), 'x');
    const r = cli(['run', '--suite', 'ownership', '--inject', 'block-not-split', ...flags], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.err.split('\n')[0]).toMatch(message);
    expect(r.err).not.toMatch(/\n\s+at /);
    expect(readdirSync(dir)).toEqual(['file']);
  });

  test('an unwritable GITHUB_STEP_SUMMARY: exit 2, one line, nothing run', () => {
    const dir = tmp();
    mkdirSync(join(dir, 'summary.md'));
    const r = cli(['run', '--suite', 'ownership', '--runs', '5'], { cwd: dir, env: { GITHUB_STEP_SUMMARY: join(dir, 'summary.md') } });
    expect(r.code).toBe(2);
    oneLine(r.err);
    expect(r.err).toMatch(/GITHUB_STEP_SUMMARY: cannot append to .*summary\.md \(EISDIR\)/);
    expect(readdirSync(dir)).toEqual(['summary.md']);
  });

  test('the summary reproduces the run: --suite, --runs, --max-steps, --seed and the bug', () => {
    const dir = tmp();
    expect(cli(['run', '--suite', 'ownership', '--runs', '7', '--max-steps', '12', '--seed', '5', '--inject', 'none'], { cwd: dir }).code).toBe(0);
    const md = readFileSync(join(dir, 'reports/summary.md'), 'utf8');
    expect(md).toContain('npx pkvm-check run --suite ownership --runs 7 --max-steps 12 --seed 5\n');
    expect(JSON.parse(readFileSync(join(dir, 'reports/summary.json'), 'utf8')).reproduce).toEqual(['npx pkvm-check run --suite ownership --runs 7 --max-steps 12 --seed 5']);
  });
});

describe('hostile trace files: one line, exit 2, nothing run', () => {
  const replayText = (name: string, text: string, env: NodeJS.ProcessEnv = {}) => {
    const dir = tmp();
    writeFileSync(join(dir, name), text);
    return cli(['replay', name], { cwd: dir, env });
  };
  const withMemory = (memory: unknown) => JSON.stringify({ format: 'pkvm-check/trace@1', config: { memory }, steps: [{ call: 'host_access', args: { pfn: 0x40000, write: true } }] });

  test.each([
    ['a region too small for hyp', withMemory([[0x40000, 16]]), /t\.json: field "config\.memory": expected memory hyp can boot on, but the largest memory region \(16 pages\)/],
    ['16 pages just under 2^40', withMemory([[2 ** 28 - 16, 16]]), /t\.json: field "config\.memory": expected memory hyp can boot on/],
    ['100,000 one-page regions', withMemory(Array.from({ length: 100_000 }, (_, i) => [0x40000 + 2 * i, 1])), /t\.json: field "config\.memory": expected memory hyp can boot on/],
    ['2^28 pages of memory', withMemory([[0, 2 ** 28]]), /t\.json: field "config\.memory": 268435456 pages of memory, over the limit of 1048576 \(raise it with PKVM_CHECK_MAX_MEMORY_PAGES=N\)/],
    ['an unknown bug', JSON.stringify({ format: 'pkvm-check/trace@1', inject: 'no-such-bug', steps: [] }), /t\.json: field "inject": expected a bug id listed by `pkvm-check bugs`, or null, got "no-such-bug"/],
    ['expect 0 of __pkvm_init_vm', JSON.stringify({ format: 'pkvm-check/trace@1', steps: [{ call: '__pkvm_init_vm', args: { pfn: 0x40010, nr_pages: 3 }, expect: 0 }] }), /t\.json: step 1: field "expect": __pkvm_init_vm returns a VM handle/],
  ])('%s', (_, text, message) => {
    const r = replayText('t.json', text);
    expect(r.code).toBe(2);
    oneLine(r.err);
    expect(r.err).toMatch(message);
    expect(r.out).toBe('');
  });

  test('a memory region near the top of the 40-bit space that hyp can boot on replays', () => {
    const r = replayText('t.json', JSON.stringify({ format: 'pkvm-check/trace@1', config: { memory: [[2 ** 28 - 4096, 4096]] }, steps: [{ call: 'host_access', args: { pfn: 2 ** 28 - 4096, write: true }, expect: 0 }] }));
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  });

  test('strings from a file cannot write terminal escapes or forge lines', () => {
    const forged = '\u001b[2J\n  ok: results agree, every expect holds, every property holds\u009b31m';
    for (const text of [JSON.stringify({ format: 'pkvm-check/trace@1', steps: [], [forged]: 1 }), JSON.stringify({ format: 'pkvm-check/trace@1', inject: forged, steps: [] })]) {
      const r = replayText('t.json', text);
      expect(r.code).toBe(2);
      oneLine(r.err);
      expect(r.err).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    }
    const named = replayText('\u001b[31mred.json', JSON.stringify({ format: 'pkvm-check/trace@1', steps: [] }));
    expect(named.code).toBe(0);
    expect(named.out).toContain('\\u001b[31mred.json');
    expect(named.out).not.toContain('\u001b');
  });

  test('caps: /dev/zero and a file over the size cap are refused; the caps are raised through the environment', () => {
    const zero = cli(['replay', '/dev/zero']);
    expect(zero.code).toBe(2);
    oneLine(zero.err);
    expect(zero.err).toContain('/dev/zero: larger than the limit of 16777216 bytes (raise it with PKVM_CHECK_MAX_TRACE_BYTES=N)');
    const text = JSON.stringify({ format: 'pkvm-check/trace@1', steps: [{ call: 'host_access', args: { pfn: 0x40000, write: false } }] });
    expect(replayText('t.json', text, { PKVM_CHECK_MAX_TRACE_BYTES: '20' }).err).toContain(`t.json: larger than the limit of 20 bytes`);
    expect(replayText('t.json', text, { PKVM_CHECK_MAX_TRACE_STEPS: '0' }).err).toContain('PKVM_CHECK_MAX_TRACE_STEPS: expected a positive whole number, got "0"');
    expect(replayText('t.json', text, { PKVM_CHECK_MAX_TRACE_BYTES: String(text.length) }).code).toBe(0);
  });
});

describe('interrupted and unbounded runs leave a summary', () => {
  /** Starts a long run, waits until the worker has reported progress, sends `signal`. */
  async function interrupt(signal: NodeJS.Signals): Promise<{ code: number | null; err: string; md: string; json: Record<string, unknown> }> {
    const dir = tmp();
    const child = spawn(process.execPath, [BIN, 'run', '--suite', 'ownership', '--runs', '10000000', '--seed', '3'], { cwd: dir });
    let err = '';
    child.stderr.on('data', (d) => (err += String(d)));
    const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    // Long enough for the worker to finish some runs even on a loaded machine (tsx, then fast-check).
    await new Promise((r) => setTimeout(r, 5000));
    child.kill(signal);
    const code = await exited;
    return { code, err, md: readFileSync(join(dir, 'reports/summary.md'), 'utf8'), json: JSON.parse(readFileSync(join(dir, 'reports/summary.json'), 'utf8')) };
  }

  test.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s: the summary so far (runs, calls, seed) is written, exit %i', async (signal, status) => {
    const r = await interrupt(signal);
    expect(r.code).toBe(status);
    expect(r.err).toMatch(new RegExp(`^pkvm-check run: interrupted by ${signal} after [1-9][0-9]* runs and [1-9][0-9]* calls \\(seed 3\\); summary so far in reports/summary\\.md\\n$`));
    expect(r.md).toContain(`# pkvm-check: interrupted by ${signal} (incomplete)`);
    expect(r.md).toMatch(/\| ownership \| interrupted \| [1-9][0-9,]* \| [1-9][0-9,]* \| 3 \|/);
    expect(r.json).toMatchObject({ ok: false, seed: 3, interrupted: signal });
  });

  test('explore --max-states and --time-limit stop at the limit and say so; progress is printed off a terminal', () => {
    const states = cli(['explore', '--pages', '3', '--max-states', '500']);
    expect(states.code).toBe(0);
    expect(states.out).toMatch(/depth \d+ \(stopped at limit: --max-states, not finished\)/);
    expect(states.out).toContain('all invariants hold on the states explored');
    const json = JSON.parse(cli(['explore', '--pages', '3', '--max-states', '500', '--json']).out);
    expect(json).toMatchObject({ ok: true, complete: false, stopped: 'max-states' });
    const timed = cli(['explore', '--pages', '6', '--time-limit', '3']);
    expect(timed.code).toBe(0);
    expect(timed.out).toMatch(/\(stopped at limit: --time-limit, not finished\)/);
    expect(timed.err).toMatch(/^explore: \d+ states, \d+ transitions, depth \d+, [23] s\n/);
  });

  test('explore with a bug says it stopped at a violation, not "(fixpoint)"', () => {
    const dir = tmp();
    const r = cli(['explore', '--inject', 'block-not-split', '--out', 'ce'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/\(stopped at a violation\)/);
    expect(r.out).not.toContain('fixpoint');
    expect(existsSync(join(dir, 'ce'))).toBe(true);
  });
});
