// `--inject BUG` in every command: an id from the catalog, or `none` for the correct implementation.
// A bug the command cannot reach (its suite is not run, or the explorer's alphabet lacks its calls) is
// an error, not a silent pass.
import { CATALOG, findBug, type CatalogEntry } from '../bugs/catalog';
import type { SuiteName } from '../suite-types';
import { UsageError } from './usage';

/**
 * The bug `value` names: undefined when the flag is absent, null for `none`. `reach` lists the suites
 * whose bugs this command can exercise (all of them for replay, whose traces may mix calls).
 */
export function parseInject(value: string | undefined, reach: readonly SuiteName[], what: string): CatalogEntry | null | undefined {
  if (value === undefined) return undefined;
  if (value === 'none') return null;
  const bug = findBug(value);
  if (!bug) throw new UsageError(`--inject: unknown bug "${value}" (known: none, ${CATALOG.map((b) => b.id).join(', ')})`);
  if (!reach.includes(bug.suite)) {
    const reachable = CATALOG.filter((b) => reach.includes(b.suite)).map((b) => b.id);
    throw new UsageError(`--inject: bug "${value}" is in the ${bug.suite} suite, which ${what} does not reach (it takes: none, ${reachable.join(', ')})`);
  }
  return bug;
}
