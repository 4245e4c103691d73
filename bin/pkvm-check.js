#!/usr/bin/env node
// Launcher: runs the TypeScript CLI through tsx, so `npx pkvm-check` works right after `npm ci`.
import { register } from 'tsx/esm/api';

// Output piped into a reader that stops early (`| head`) ends the run quietly, as Unix tools do.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
register();
const { main } = await import('../checker/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
