// Output locations given on the command line (--out, --reports, GITHUB_STEP_SUMMARY) are checked
// before any work starts: an empty name, a file where a directory belongs, or a place nothing can be
// written is one line and exit 2, and the check leaves the disk as it found it.
import { closeSync, existsSync, mkdirSync, openSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { InputError } from '../vocabulary';
import { UsageError } from './usage';

const code = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e as Error).message.split('\n')[0];

/** The nearest existing path at or above `path`. */
function nearestExisting(path: string): string {
  let p = resolve(path);
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

/** Throws unless a file can be created in the existing directory `dir` (probed, then removed). */
function probeWritable(dir: string, what: string): void {
  const probe = join(dir, `.pkvm-check-probe-${process.pid}`);
  try {
    mkdirSync(probe);
  } catch (e) {
    throw new InputError(`${what}: cannot write into ${dir} (${code(e)})`);
  }
  rmdirSync(probe);
}

/** The directory a flag names (default `dflt`), once it is known that it exists or can be created. */
export function outputDir(flag: string, value: string | undefined, dflt: string): string {
  const dir = value ?? dflt;
  if (dir === '') throw new UsageError(`--${flag}: expected a directory, got an empty string`);
  const existing = nearestExisting(dir);
  const st = statSync(existing);
  if (!st.isDirectory())
    throw new InputError(existing === resolve(dir) ? `--${flag}: ${dir} is not a directory` : `--${flag}: cannot create ${dir}: ${existing} is not a directory`);
  probeWritable(existing, `--${flag}`);
  return dir;
}

/** GITHUB_STEP_SUMMARY, when set, must be a file the Markdown can be appended to. */
export function checkStepSummary(path: string | undefined): void {
  if (!path) return;
  const what = 'GITHUB_STEP_SUMMARY';
  if (!existsSync(path)) {
    const parent = nearestExisting(dirname(path));
    if (parent !== resolve(dirname(path)) || !statSync(parent).isDirectory()) throw new InputError(`${what}: cannot append to ${path} (its directory does not exist)`);
    probeWritable(parent, what);
    return;
  }
  if (statSync(path).isDirectory()) throw new InputError(`${what}: cannot append to ${path} (EISDIR)`);
  try {
    closeSync(openSync(path, 'a'));
  } catch (e) {
    throw new InputError(`${what}: cannot append to ${path} (${code(e)})`);
  }
}

