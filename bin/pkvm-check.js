#!/usr/bin/env node
// Launcher: runs the TypeScript CLI through tsx, so `npx pkvm-check` works right after `npm ci`.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../checker/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
