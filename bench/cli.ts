// `pkvm-check bench [--json]`: throughput figures (CONTRACT.md). The measuring lives in measure.ts; the
// command lives here, beside it, because bench/ imports checker/ and never the other way round.
import { parseFlags } from '../checker/cli/usage';
import { benchJson, formatBench, runBench } from './measure';

export async function benchCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { json: { type: 'boolean' } });
  const json = values.json === true;
  const result = runBench(undefined, json ? undefined : (line) => process.stderr.write(`${line}\n`));
  process.stdout.write(json ? `${JSON.stringify(benchJson(result))}\n` : formatBench(result));
  return 0;
}
