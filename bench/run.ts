// `npm run bench`: prints the benchmark table and writes reports/bench.json (git-ignored).
// `--json` prints the JSON object instead; `--no-save` writes nothing; `--kernel 6.12|6.16` measures
// that pKVM (as `pkvm-check bench --kernel`).
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseKernelVersion } from '../checker/trace/config';
import { benchJson, DEFAULT_BENCH, formatBench, runBench } from './measure';

const args = process.argv.slice(2);
const json = args.includes('--json');
const k = args.indexOf('--kernel');
const kernel = k < 0 ? undefined : parseKernelVersion(args[k + 1], '--kernel');
const result = runBench(kernel ? { ...DEFAULT_BENCH, kernel } : DEFAULT_BENCH, (line) => process.stderr.write(`${line}\n`));
const out = `${JSON.stringify(benchJson(result), null, 2)}\n`;
if (!args.includes('--no-save')) {
  mkdirSync('reports', { recursive: true });
  writeFileSync('reports/bench.json', out);
}
process.stdout.write(json ? out : formatBench(result));
