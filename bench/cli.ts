// `pkvm-check bench [--json] [--kernel 6.12|6.16]`: throughput figures (CONTRACT.md), every machine
// modelling the version named (default 6.16). The measuring lives in measure.ts; the
// command lives here, beside it, because bench/ imports checker/ and never the other way round.
import { parseKernelFlag } from '../checker/cli/target';
import { parseFlags } from '../checker/cli/usage';
import { benchJson, DEFAULT_BENCH, formatBench, runBench } from './measure';

export async function benchCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { json: { type: 'boolean' }, kernel: { type: 'string' } });
  const json = values.json === true;
  const kernel = parseKernelFlag(values);
  const result = runBench(kernel ? { ...DEFAULT_BENCH, kernel } : DEFAULT_BENCH, json ? undefined : (line) => process.stderr.write(`${line}\n`));
  process.stdout.write(json ? `${JSON.stringify(benchJson(result))}\n` : formatBench(result));
  return 0;
}
