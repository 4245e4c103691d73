// `npm run bench`: prints the benchmark table and writes reports/bench.json (git-ignored).
// `--json` prints the JSON object instead; `--no-save` writes nothing.
import { mkdirSync, writeFileSync } from 'node:fs';
import { benchJson, formatBench, runBench } from './measure';

const args = process.argv.slice(2);
const json = args.includes('--json');
const result = runBench(undefined, (line) => process.stderr.write(`${line}\n`));
const out = `${JSON.stringify(benchJson(result), null, 2)}\n`;
if (!args.includes('--no-save')) {
  mkdirSync('reports', { recursive: true });
  writeFileSync('reports/bench.json', out);
}
process.stdout.write(json ? out : formatBench(result));
