// `pkvm-check bugs`: the known bugs `--inject` can re-introduce, one per line: `id  description`.
import { CATALOG } from '../bugs/catalog';
import { parseFlags } from './usage';

export async function bugsCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { json: { type: 'boolean' } });
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ bugs: CATALOG.map(({ id, description, suite }) => ({ id, description, suite })) })}\n`);
    return 0;
  }
  const width = Math.max(...CATALOG.map((b) => b.id.length));
  for (const b of CATALOG) process.stdout.write(`${b.id.padEnd(width)}  ${b.description}\n`);
  return 0;
}
