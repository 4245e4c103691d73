// Runs a TypeScript entry point of this package as one plain-JavaScript ESM bundle built by esbuild.
// A bundle runs the checker's hot loops markedly faster than tsx's per-file transform (which wraps
// every named closure in a __name() call). It is rebuilt on every start (about 50 ms) and cached by
// content hash under node_modules/.cache/pkvm-check/, so an edited source is always what runs.
// Should the bundle not be writable there, the entry runs through tsx instead.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Imports `entry` (a path relative to the package root) and returns its module. */
export async function importBundled(entry) {
  const dir = join(root, 'node_modules', '.cache', 'pkvm-check');
  const result = await build({
    outfile: join(dir, 'bundle.mjs'), // not written: it only makes the source map's paths relative to `dir`
    entryPoints: [join(root, entry)],
    absWorkingDir: root,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: 'inline',
    write: false,
    logLevel: 'silent',
  });
  const text = result.outputFiles.find((f) => f.path.endsWith('.mjs')).text;
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 16);
  const file = join(dir, `${basename(entry, '.ts')}-${hash}.mjs`);
  try {
    if (!existsSync(file)) {
      mkdirSync(dir, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, text);
      renameSync(tmp, file); // atomic: a concurrent start sees the whole file or none
      removeStale(dir, basename(entry, '.ts'), file);
    }
  } catch {
    const { register } = await import('tsx/esm/api');
    register();
    return import(pathToFileURL(join(root, entry)).href);
  }
  process.setSourceMapsEnabled(true);
  return import(pathToFileURL(file).href);
}

/** Bundles of the same entry for older sources (left alone for a while: a run may be starting from one). */
function removeStale(dir, name, keep) {
  const old = Date.now() - 10 * 60 * 1000;
  for (const f of readdirSync(dir)) {
    const path = join(dir, f);
    if (path === keep || !f.startsWith(`${name}-`)) continue;
    try {
      if (statSync(path).mtimeMs < old) unlinkSync(path);
    } catch {
      // another start removed it first
    }
  }
}

// `node bin/bundle.js ENTRY.ts ARGS...` runs a script entry point (e.g. `npm run bench`).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [entry, ...rest] = process.argv.slice(2);
  process.argv = [process.argv[0], join(root, entry), ...rest];
  await importBundled(entry);
}
