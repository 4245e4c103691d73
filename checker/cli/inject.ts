// --inject BUG: an id from the catalog, or "none".
import { CATALOG, findBug } from '../bugs/catalog';
import { UsageError } from './usage';

export function parseInject(value: string | undefined, allowNone: boolean): string | null | undefined {
  if (value === undefined) return undefined;
  if (value === 'none' && allowNone) return null;
  if (!findBug(value)) throw new UsageError(`--inject: unknown bug "${value}" (known: ${CATALOG.map((b) => b.id).join(', ')})`);
  return value;
}
