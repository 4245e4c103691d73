// Every temporary file of `npm test` (the tests' own folders, the CLI's, the fresh-process check of a
// trace) goes into one folder made here, and the folder goes when the run ends: os.tmpdir() reads
// TMPDIR, which the test workers and the processes they spawn inherit.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'pkvm-check-test-'));
  const before = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  return () => {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
    rmSync(dir, { recursive: true, force: true });
  };
}
