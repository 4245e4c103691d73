// The catalog of known bugs that `--inject ID` re-introduces, from every area.
import type { SuiteName } from '../suite-types';
import { OWNERSHIP_BUGS, type HypBug } from './ownership';
import { SNAPSHOT_BUGS } from './snapshot';
import { UNWINDER_BUGS, type UnwinderBug } from './unwinder';

export interface CatalogEntry {
  readonly id: string;
  readonly description: string;
  readonly suite: SuiteName;
}

export const HYP_BUGS: readonly HypBug[] = [...OWNERSHIP_BUGS, ...SNAPSHOT_BUGS];

export const CATALOG: readonly CatalogEntry[] = [...HYP_BUGS, ...UNWINDER_BUGS];

export const findBug = (id: string): CatalogEntry | undefined => CATALOG.find((b) => b.id === id);

/** The hyp bugs to inject for an id (none for another area's bug, or for null). */
export const hypBugsFor = (id: string | null): HypBug[] => HYP_BUGS.filter((b) => b.id === id);
export const unwinderBugsFor = (id: string | null): UnwinderBug[] => UNWINDER_BUGS.filter((b) => b.id === id);
