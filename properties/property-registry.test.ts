// The registry of properties (checker/properties.ts): `pkvm-check properties` lists it, `P` names
// every entry, and no source file spells a property's name itself: a failure names its property
// through the registry, so a misspelt or renamed property is a type error, never a silent new name.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { camelCase, isPropertyName, P, PROPERTIES, PROPERTY_AREAS, PROPERTY_NAMES, propertyList } from '../checker/properties';
import { parseTrace } from '../checker/trace/file';

const cli = (args: string[]) => {
  const r = spawnSync(process.execPath, [join(process.cwd(), 'bin/pkvm-check.js'), ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

/** Every file under `dir` whose name ends in one of `exts`. */
function filesUnder(dir: string, exts: readonly string[]): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && exts.some((x) => e.name.endsWith(x)))
    .map((e) => join(e.parentPath, e.name));
}

describe('the registry', () => {
  test('every property has an area and a one-line statement, and P names each under its camel-cased name', () => {
    expect(PROPERTY_NAMES.length).toBeGreaterThanOrEqual(30);
    for (const name of PROPERTY_NAMES) {
      expect(name).toMatch(/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/);
      expect(PROPERTY_AREAS).toContain(PROPERTIES[name].area);
      expect(PROPERTIES[name].statement).toMatch(/^[^\n]{10,140}$/);
      expect((P as Record<string, string>)[camelCase(name)]).toBe(name);
    }
    expect(Object.keys(P)).toHaveLength(PROPERTY_NAMES.length);
    expect(Object.isFrozen(P)).toBe(true);
    for (const area of PROPERTY_AREAS) expect(propertyList().some((p) => p.area === area)).toBe(true);
  });

  test('every property a saved trace names is registered', () => {
    const traces = ['counterexamples', 'conformance'].flatMap((d) => filesUnder(d, ['.json']));
    expect(traces.length).toBeGreaterThan(0);
    for (const file of traces) {
      const property = parseTrace(readFileSync(file, 'utf8'), file).failure?.property;
      if (property !== undefined) expect(isPropertyName(property), `${file}: ${property}`).toBe(true);
    }
  });
});

describe('pkvm-check properties', () => {
  test('lists every property, one per line with its area and statement, and exits 0', () => {
    const r = cli(['properties']);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    const lines = r.out.trimEnd().split('\n');
    expect(lines).toHaveLength(PROPERTY_NAMES.length);
    expect(lines.map((l) => l.split(/ {2,}/))).toEqual(propertyList().map((p) => [p.name, p.area, p.statement]));
  });

  test('--json: an array of { name, area, statement }, every property once', () => {
    const r = cli(['properties', '--json']);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.out) as { name: string; area: string; statement: string }[];
    expect(list.map((p) => p.name).sort()).toEqual([...PROPERTY_NAMES].sort());
    for (const p of list) expect(p).toEqual({ name: p.name, ...PROPERTIES[p.name as keyof typeof PROPERTIES] });
  });

  test('a stray argument is a usage error', () => {
    const r = cli(['properties', 'x']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^pkvm-check properties: .*\nusage: pkvm-check properties \[--json\]\n$/);
  });
});

describe('no property name outside the registry', () => {
  // Sources and tests, without their comments. Saved traces (.json) are data and keep their names; a
  // JSON text inside a test is double-quoted, so the single-quote and backtick literals below do not
  // see it.
  const REGISTRY = join('checker', 'properties.ts');
  const files = ['checker', 'hyp', 'bench', join('kernel', 'tests'), 'properties'].flatMap((d) => filesUnder(d, ['.ts'])).filter((f) => f !== REGISTRY);
  const code = (file: string): string[] =>
    readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => (/^\s*(\/\/|\/?\*)/.test(l) ? '' : l.replace(/\s\/\/\s.*$/, '')));
  const isTest = (file: string) => file.startsWith('properties');
  // 'expect' is also a trace step's field: only a `property:` field with it counts.
  const names = new Set<string>(PROPERTY_NAMES.filter((n) => n !== P.expect));

  test('the scan reads the sources that report failures', () => {
    expect(files).toContain(join('checker', 'invariants.ts'));
    expect(files).toContain(join('checker', 'targets', 'kernel.ts'));
    expect(files.length).toBeGreaterThan(50);
  });

  test('no `property:` field holds a literal name, and no code quotes a registered name', () => {
    const found = new Set<string>();
    for (const file of files)
      code(file).forEach((line, i) => {
        const where = `${file}:${i + 1}: ${line.trim()}`;
        for (const m of line.matchAll(/\bproperty\s*:\s*(['`])([^'`]*)\1/g))
          // A test may hold a made-up name as trace data; a source may hold none.
          if (!isTest(file) || isPropertyName(m[2])) found.add(where);
        for (const m of line.matchAll(/(['`])([a-z0-9-]+)\1/g)) if (names.has(m[2])) found.add(where);
      });
    expect([...found]).toEqual([]);
  });
});
