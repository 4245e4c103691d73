// `pkvm-check properties`: every property the checker checks (checker/properties.ts), one per line:
// `name  area  statement`, grouped by area; --json prints them as an array of { name, area, statement }.
import { propertyList } from '../properties';
import { parseFlags } from './usage';

export async function propertiesCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { json: { type: 'boolean' } });
  const list = propertyList();
  if (values.json) {
    process.stdout.write(`${JSON.stringify(list.map(({ name, area, statement }) => ({ name, area, statement })))}\n`);
    return 0;
  }
  const name = Math.max(...list.map((p) => p.name.length));
  const area = Math.max(...list.map((p) => p.area.length));
  for (const p of list) process.stdout.write(`${p.name.padEnd(name)}  ${p.area.padEnd(area)}  ${p.statement}\n`);
  return 0;
}
