#!/usr/bin/env node
// Launcher: bundles the TypeScript CLI with esbuild and runs it (bin/bundle.js), so `npx pkvm-check`
// works right after `npm ci` with no build step.
import { importBundled } from './bundle.js';

// Output piped into a reader that stops early (`| head`) ends the run quietly, as Unix tools do.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
const { main } = await importBundled('checker/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
