// `pkvm-check bench [--json]`: throughput figures (CONTRACT.md). The measuring lives in bench/measure.ts.
import { benchJson, formatBench, runBench } from '../../bench/measure';
import { parseFlags } from './usage';

export async function benchCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { json: { type: 'boolean' } });
  const json = values.json === true;
  const result = runBench(undefined, json ? undefined : (line) => process.stderr.write(`${line}\n`));
  process.stdout.write(json ? `${JSON.stringify(benchJson(result))}\n` : formatBench(result));
  return 0;
}
