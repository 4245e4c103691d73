// CLI conventions (issue 12): --help for every command with its defaults and exit codes, `help CMD`,
// --version, a usage error as one line plus that command's own synopsis, `--inject` read the same way
// by every command, and usage text that lists every flag the README documents. The entry point runs
// in-process (output captured); the launcher's own part, `bench` and --version, through the binary.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { CATALOG } from '../checker/bugs/catalog';
import { main } from '../checker/cli/main';
import { HELP, USAGE } from '../checker/cli/usage';

const spawned = (args: string[]) => {
  const r = spawnSync(process.execPath, [join(process.cwd(), 'bin/pkvm-check.js'), ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
/** `main` with stdout and stderr captured. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    return { code: await main(args), out, err };
  } finally {
    vi.restoreAllMocks();
  }
}
afterEach(() => vi.restoreAllMocks());
const COMMANDS = ['run', 'replay', 'bugs', 'properties', 'explore', 'unwind', 'bench'];
const bugOf = (suite: string) => CATALOG.find((b) => b.suite === suite)!.id;

describe('help', () => {
  test.each(COMMANDS)('%s --help: its synopsis, every flag with its default, the exit codes; the same as `help %s`', async (name) => {
    const r = name === 'bench' ? spawned([name, '--help']) : await cli([name, '--help']);
    expect(r.code).toBe(0);
    expect(r.out.startsWith(`usage: ${HELP[name].synopsis}\n`)).toBe(true);
    expect(r.out).toMatch(/exit codes: 0/);
    for (const flag of HELP[name].synopsis.match(/--[a-z-]+/g) ?? []) if (flag !== '--help') expect(r.out.split(HELP[name].synopsis).join('')).toContain(`  ${flag}`);
    expect(await cli(['help', name])).toEqual(r);
  });

  test('--version, --help and help: exit 0; no command, an unknown one or `help nope`: exit 2 with one line', async () => {
    const version = JSON.parse(readFileSync('package.json', 'utf8')).version;
    expect(spawned(['--version'])).toEqual({ code: 0, out: `pkvm-check ${version}\n`, err: '' });
    expect(await cli(['--help'])).toEqual({ code: 0, out: `${USAGE}\n`, err: '' });
    expect((await cli(['help'])).out).toBe(`${USAGE}\n`);
    for (const args of [[], ['frobnicate'], ['help', 'frobnicate']]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err.split('\n')[0]).toMatch(/^pkvm-check( help)?: (name a command|unknown command "frobnicate")/);
    }
  });

  test("a usage error: one line, then that command's synopsis only", async () => {
    const r = spawned(['explore', '--pages', 'many']);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`pkvm-check explore: --pages: expected a whole number, got "many"\nusage: ${HELP.explore.synopsis}\n`);
  });

  test.each([
    [['run', '--runs', '-1'], 'pkvm-check run: --runs: expected a whole number, got "-1" (negative numbers are not allowed)'],
    [['run', '--runs=-1'], 'pkvm-check run: --runs: expected a whole number from 1 to 10000000, got "-1" (negative numbers are not allowed)'],
    [['explore', '--depth', '9007199254740993'], 'pkvm-check explore: --depth: expected a number from 0 to 65535, got "9007199254740993"'],
    [['explore', '--max-states', '1e400'], 'pkvm-check explore: --max-states: expected a whole number, got "1e400"'],
  ])('%j: a real message, the value as given', async (args, message) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.err.split('\n')[0]).toBe(message);
  });

  test('the usage text lists every flag the README documents for each command', () => {
    const readme = readFileSync('README.md', 'utf8');
    for (const name of COMMANDS) {
      const documented = [...readme.matchAll(new RegExp(`npx pkvm-check ${name} ([^\\n]*)`, 'g'))].flatMap((m) => m[1].match(/--[a-z-]+/g) ?? []);
      for (const flag of new Set(documented)) expect(HELP[name].synopsis, `${name} ${flag}`).toContain(flag);
    }
  });
});

describe('--inject means the same in every command', () => {
  test('`none` is accepted by run, replay, explore and unwind', async () => {
    expect(spawned(['run', '--suite', 'unwinder', '--runs', '2', '--inject', 'none', '--reports', join(process.env.TMPDIR ?? '/tmp', 'inject-none')]).code).toBe(0);
    expect((await cli(['replay', 'counterexamples/state-agrees-1d621aab36.json', '--inject', 'none'])).code).toBe(0);
    expect((await cli(['explore', '--depth', '1', '--inject', 'none'])).code).toBe(0);
    expect((await cli(['unwind', '--scenario', 'call_chain', '--inject', 'none'])).code).toBe(0);
  });

  test.each([
    [['run', '--suite', 'ownership', '--inject', bugOf('snapshot')], 'in the snapshot suite, which --suite ownership does not reach'],
    [['run', '--suite', 'snapshot', '--inject', bugOf('unwinder')], 'in the unwinder suite, which --suite snapshot does not reach'],
    [['explore', '--inject', bugOf('unwinder')], 'in the unwinder suite, which explore does not reach'],
    [['unwind', '--scenario', 'call_chain', '--inject', bugOf('ownership')], 'in the ownership suite, which unwind does not reach'],
    [['replay', 'counterexamples/state-agrees-1d621aab36.json', '--inject', 'no-such-bug'], 'unknown bug "no-such-bug" (known: none,'],
    [['explore', '--inject', 'no-such-bug'], 'unknown bug "no-such-bug" (known: none,'],
  ])('%j: a bug the command cannot reach, or none of the catalog, is exit 2', async (args, message) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.err.split('\n')[0]).toContain(message);
  });
});
