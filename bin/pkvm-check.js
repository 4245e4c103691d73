#!/usr/bin/env node
// Launcher: runs the TypeScript CLI through tsx, so `npx pkvm-check` works right after `npm ci`.
import { register } from 'tsx/esm/api';

// The exit status never hides a failure. A reader that stops early (`| head`) closes the pipe: output
// stops there (as for Unix tools) and the exit status stays the command's own, 1 for a failing run.
// Any other error writing stdout (a full disk, /dev/full) is one line on stderr and exit 2, or 1 when
// the command failed anyway.
let stdoutError = null;
/** The status once stdout's fate is known: 0 turns into 2 when stdout could not be written. */
const status = (code) => (stdoutError === null || stdoutError === 'EPIPE' || code !== 0 ? code : 2);
process.stdout.on('error', (e) => {
  if (stdoutError !== null) return;
  stdoutError = e.code ?? 'error';
  if (stdoutError !== 'EPIPE') process.stderr.write(`pkvm-check: cannot write to standard output (${stdoutError})\n`);
  process.exitCode = status(process.exitCode ?? 0);
});
// Progress and messages on stderr: if even stderr is gone there is nobody to tell; the status stands.
process.stderr.on('error', () => undefined);

register();
const { main } = await import('../checker/cli/main.ts');
// `bench` measures through bench/, which imports checker/; the launcher, above both, wires it in.
const code = await main(process.argv.slice(2), { bench: async () => (await import('../bench/cli.ts')).benchCommand });
process.exitCode = status(code);
