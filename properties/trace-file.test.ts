// Trace files: what is written reads back identically, and every malformed file is rejected with one
// line naming the file, the step and the field, before anything touches the disk.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { DEFAULT_CONFIG } from '../types/config';
import { encodeTrace, parseTrace, readTrace, replayCommandLine, traceFileName, writeTrace, type TraceFile } from '../checker/trace/file';
import { describeJsonError } from '../checker/trace/json-error';
import { InputError } from '../checker/vocabulary';
import { traceFiles } from './trace-arbitrary';

const seedFromEnv = Number(process.env.PKVM_CHECK_SEED ?? '1');
// Plain `test` + `fc.assert`, not `test.prop`: test.prop appends "(with seed=N)" to the test name,
// and JUnit test names must stay the same whatever the seed.
const params = { seed: Number.isSafeInteger(seedFromEnv) ? seedFromEnv : 1, numRuns: 300 };
const FILE = 'counterexamples/x.json';

/** The message of the InputError that parsing `text` throws (fails the test if it does not throw one). */
function rejection(text: string): string {
  try {
    parseTrace(text, FILE);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as Error).message;
  }
  throw new Error(`accepted: ${text}`);
}

const trace = (fields: Record<string, unknown>): string => JSON.stringify({ format: 'pkvm-check/trace@1', steps: [], ...fields });

const CONTRACT_EXAMPLE = `{
  "format": "pkvm-check/trace@1",
  "config": { "memory": [[262144, 4096]], "pageSize": 4096 },
  "inject": "snapshot-used-pages-off-by-one",
  "seed": 42,
  "steps": [
    { "call": "__pkvm_host_share_hyp", "args": { "pfn": 262147 }, "expect": 0 },
    { "call": "hyp_pin_shared_mem", "args": { "pfn": 262147, "nr_pages": 1 } },
    { "call": "__pkvm_host_unshare_hyp", "args": { "pfn": 262147 }, "expect": "-EBUSY" },
    { "call": "host_access", "args": { "pfn": 262147, "write": true }, "expect": 0 }
  ],
  "failure": { "property": "...", "step": 3, "message": "..." }
}
`;

describe('trace round trip', () => {
  test('parse(encode(t)) equals t, and encoding is stable', () => {
    fc.assert(
      fc.property(traceFiles, (t) => {
        const text = encodeTrace(t);
        const back = parseTrace(text, FILE);
        expect(back).toEqual(t);
        expect(encodeTrace(back)).toBe(text);
      }),
      params,
    );
  });

  test('the CONTRACT example reads and re-encodes byte for byte', () => {
    const t = parseTrace(CONTRACT_EXAMPLE, FILE);
    expect(t.steps[2]).toEqual({ call: '__pkvm_host_unshare_hyp', args: { pfn: 262147 }, expect: -16 });
    expect(encodeTrace(t)).toBe(CONTRACT_EXAMPLE);
  });

  test('optional fields take their defaults', () => {
    const t = parseTrace(trace({}), FILE);
    expect(t).toEqual({ format: 'pkvm-check/trace@1', config: DEFAULT_CONFIG, inject: null, seed: null, steps: [], failure: null });
    expect(parseTrace(trace({ config: { memory: [[0, 4096]] } }), FILE).config).toEqual({ memory: [[0, 4096]], pageSize: 4096 });
  });

  test('a simulation-only pinLimit reads back, and is written only when set', () => {
    const t = parseTrace(trace({ config: { pinLimit: 4 } }), FILE);
    expect(t.config).toEqual({ ...DEFAULT_CONFIG, pinLimit: 4 });
    expect(encodeTrace(t)).toContain('"config": { "memory": [[262144, 4096]], "pageSize": 4096, "pinLimit": 4 },');
    expect(parseTrace(encodeTrace(t), FILE)).toEqual(t);
    expect(encodeTrace(parseTrace(trace({}), FILE))).not.toContain('pinLimit');
  });

  test('"$N" references, prot strings and errno names survive', () => {
    const text = trace({
      steps: [
        { call: '__pkvm_init_vm', args: { pfn: 0x40010, nr_pages: 3 } },
        { call: '__pkvm_host_share_guest', args: { pfn: 0x40020, gfn: 5, nr_pages: 1, vm: '$1', prot: 'RW' }, expect: '-EPERM' },
      ],
    });
    const t = parseTrace(text, FILE);
    expect(t.steps[1]).toEqual({
      call: '__pkvm_host_share_guest',
      args: { pfn: 0x40020, gfn: 5, nr_pages: 1, vm: { ref: 1 }, prot: { r: true, w: true, x: false } },
      expect: -1,
    });
    expect(encodeTrace(t)).toContain('{ "call": "__pkvm_host_share_guest", "args": { "pfn": 262176, "gfn": 5, "nr_pages": 1, "vm": "$1", "prot": "RW" }, "expect": "-EPERM" }');
  });
});

describe('malformed traces: one line naming the file, the step and the field', () => {
  const cases: [string, string, string][] = [
    ['not JSON (where)', '{\n  "format": "pkvm-check/trace@1",\n  "steps": [}\n', `${FILE}: not JSON: line 3, column 13: expected a JSON value, found "}"`],
    ['not JSON (truncated)', '{ "format": "pkvm-check/trace@1", "steps": [', `${FILE}: not JSON: line 1, column 45: expected a JSON value, found the end of the file`],
    ['not an object', '[]', `${FILE}: expected an object { "format": "pkvm-check/trace@1", "steps": [...] }, got an array`],
    ['another format tag', trace({ format: 'pkvm-check/trace@2' }), `${FILE}: field "format": expected "pkvm-check/trace@1", got "pkvm-check/trace@2"`],
    ['no format tag', '{ "steps": [] }', `${FILE}: field "format": expected "pkvm-check/trace@1", got nothing`],
    ['unknown top-level field', trace({ note: 'x' }), `${FILE}: field "note": unknown field (allowed: format, config, inject, seed, steps, failure)`],
    ['steps not an array', trace({ steps: {} }), `${FILE}: field "steps": expected an array of steps { call, args, expect? }, got {}`],
    [
      'unknown call',
      trace({ steps: [{ call: '__pkvm_host_share_hyp', args: { pfn: 1 } }, { call: '__pkvm_host_share_everything', args: {} }] }),
      `${FILE}: step 2: field "call": unknown call "__pkvm_host_share_everything"`,
    ],
    [
      'unknown argument',
      trace({ steps: [{ call: '__pkvm_host_share_hyp', args: { pfn: 1, nr_pages: 1 } }] }),
      `${FILE}: step 1: unknown argument "args.nr_pages" for __pkvm_host_share_hyp`,
    ],
    [
      'wrong type',
      trace({ steps: [{ call: 'host_access', args: { pfn: 1, write: true } }, { call: 'host_access', args: { pfn: 1, write: false } }, { call: '__pkvm_host_share_hyp', args: { pfn: 'abc' } }] }),
      `${FILE}: step 3: field "args.pfn": expected a non-negative integer, got "abc"`,
    ],
    [
      'missing argument',
      trace({ steps: [{ call: 'hyp_pin_shared_mem', args: { pfn: 1 } }] }),
      `${FILE}: step 1: field "args.nr_pages": missing (required by hyp_pin_shared_mem)`,
    ],
    [
      '"$N" naming a step that is not __pkvm_init_vm',
      trace({ steps: [{ call: '__pkvm_host_share_hyp', args: { pfn: 1 } }, { call: '__pkvm_teardown_vm', args: { vm: '$1' } }] }),
      `${FILE}: step 2: field "args.vm": "$1" must name an earlier __pkvm_init_vm step`,
    ],
    [
      '"$N" naming a later step',
      trace({ steps: [{ call: '__pkvm_teardown_vm', args: { vm: '$2' } }, { call: '__pkvm_init_vm', args: { pfn: 1, nr_pages: 3 } }] }),
      `${FILE}: step 1: field "args.vm": "$2" must name an earlier __pkvm_init_vm step`,
    ],
    ['bad expect', trace({ steps: [{ call: '__pkvm_host_share_hyp', args: { pfn: 1 }, expect: '-ENOPE' }] }), `${FILE}: step 1: field "expect": expected 0, a negative errno (a number or a name like "-EPERM"), "panic", "not-supported" or a positive result, got "-ENOPE"`],
    ['page size', trace({ config: { pageSize: 16384 } }), `${FILE}: field "config.pageSize": expected 4096 (the only simulated stage-2 granule), got 16384`],
    ['empty memory', trace({ config: { memory: [] } }), `${FILE}: field "config.memory": expected a non-empty array of [first pfn, number of pages], got []`],
    ['zero-page region', trace({ config: { memory: [[0, 0]] } }), `${FILE}: field "config.memory[0][1]": expected a positive integer (number of pages), got 0`],
    [
      'overlapping regions',
      trace({ config: { memory: [[0, 16], [8, 16]] } }),
      `${FILE}: field "config.memory[1]": expected a region starting at or after pfn 0x10 (regions sorted, not overlapping), got [8,16]`,
    ],
    [
      'region beyond 40 bits',
      trace({ config: { memory: [[0xfffffff, 2]] } }),
      `${FILE}: field "config.memory[0]": expected a region inside the 40-bit PA space (pfns below 0x10000000), got [268435455,2]`,
    ],
    ['unknown config field', trace({ config: { cpus: 4 } }), `${FILE}: field "config.cpus": unknown field (allowed: memory, pageSize, kernel, pinLimit)`],
    ['pinLimit 0', trace({ config: { pinLimit: 0 } }), `${FILE}: field "config.pinLimit": expected an integer from 1 to 65535 (pins a page holds; simulation only), got 0`],
    ['pinLimit past the u16', trace({ config: { pinLimit: 65536 } }), `${FILE}: field "config.pinLimit": expected an integer from 1 to 65535 (pins a page holds; simulation only), got 65536`],
    ['pinLimit not an integer', trace({ config: { pinLimit: '4' } }), `${FILE}: field "config.pinLimit": expected an integer from 1 to 65535 (pins a page holds; simulation only), got "4"`],
    ['unknown kernel', trace({ config: { kernel: '6.14' } }), `${FILE}: field "config.kernel": expected "6.12" or "6.16", got "6.14"`],
    ['inject not a string', trace({ inject: 3 }), `${FILE}: field "inject": expected a bug id listed by \`pkvm-check bugs\`, or null, got 3`],
    ['inject an unknown bug', trace({ inject: 'no-such-bug' }), `${FILE}: field "inject": expected a bug id listed by \`pkvm-check bugs\`, or null, got "no-such-bug"`],
    [
      'inject with terminal escapes',
      trace({ inject: '\u001b[2J\n  ok: results agree' }),
      `${FILE}: field "inject": expected a bug id listed by \`pkvm-check bugs\`, or null, got "\\u001b[2J\\n  ok: results agree"`,
    ],
    [
      'expect 0 of __pkvm_init_vm',
      trace({ steps: [{ call: '__pkvm_init_vm', args: { pfn: 0x40010, nr_pages: 3 }, expect: 0 }] }),
      `${FILE}: step 1: field "expect": __pkvm_init_vm returns a VM handle on success, so expect only a negative errno, or omit it`,
    ],
    [
      'a region too small for hyp',
      trace({ config: { memory: [[0x40000, 16]] } }),
      `${FILE}: field "config.memory": expected memory hyp can boot on, but the largest memory region (16 pages) is too small for hyp's 303-page carve-out`,
    ],
    [
      '16 pages just under 2^40',
      trace({ config: { memory: [[0xffffff0, 16]] } }),
      `${FILE}: field "config.memory": expected memory hyp can boot on, but the largest memory region (16 pages) is too small for hyp's 303-page carve-out`,
    ],
    [
      'more memory than the cap',
      trace({ config: { memory: [[0, 0x8000000]] } }),
      `${FILE}: field "config.memory": 134217728 pages of memory, over the limit of 1048576 (raise it with PKVM_CHECK_MAX_MEMORY_PAGES=N)`,
    ],
    ['2^53 + 1, not read as 2^53', '{ "format": "pkvm-check/trace@1", "seed": 9007199254740993, "steps": [] }', `${FILE}: line 1, column 43: the number 9007199254740993 cannot be read exactly (integers up to 2^53 - 1, finite numbers only)`],
    ['1e400, not read as Infinity', '{ "format": "pkvm-check/trace@1", "seed": 1e400, "steps": [] }', `${FILE}: line 1, column 43: the number 1e400 cannot be read exactly (integers up to 2^53 - 1, finite numbers only)`],
    ['negative seed', trace({ seed: -1 }), `${FILE}: field "seed": expected a non-negative integer or null, got -1`],
    ['failure not an object', trace({ failure: 'boom' }), `${FILE}: field "failure": expected an object { property, step, message } or null, got "boom"`],
    [
      'failure step beyond the steps',
      trace({ failure: { property: 'p', step: 1, message: 'm' } }),
      `${FILE}: field "failure.step": expected an integer from 0 to 0 (the number of steps), got 1`,
    ],
  ];

  for (const [kind, text, message] of cases) {
    test(kind, () => {
      expect(rejection(text)).toBe(message);
    });
  }

  test('a file that cannot be read is one line', () => {
    expect(() => readTrace('no/such/trace.json')).toThrow(new InputError('no/such/trace.json: cannot read the file (ENOENT)'));
    expect(() => readTrace('counterexamples')).toThrow(new InputError('counterexamples: cannot read the file (EISDIR)'));
  });

  test('caps: a file larger than the size cap is refused without reading it all; too many steps; each cap names its variable', () => {
    expect(() => readTrace('/dev/zero')).toThrow(new InputError(`/dev/zero: larger than the limit of ${16 * 2 ** 20} bytes (raise it with PKVM_CHECK_MAX_TRACE_BYTES=N)`));
    const steps = Array.from({ length: 3 }, () => ({ call: 'host_access', args: { pfn: 1, write: false } }));
    process.env.PKVM_CHECK_MAX_TRACE_STEPS = '2';
    try {
      expect(rejection(trace({ steps }))).toBe(`${FILE}: field "steps": 3 steps, over the limit of 2 (raise it with PKVM_CHECK_MAX_TRACE_STEPS=N)`);
      process.env.PKVM_CHECK_MAX_TRACE_STEPS = '3';
      expect(parseTrace(trace({ steps }), FILE).steps).toHaveLength(3);
      process.env.PKVM_CHECK_MAX_TRACE_STEPS = 'lots';
      expect(rejection(trace({ steps }))).toBe(`${FILE}: PKVM_CHECK_MAX_TRACE_STEPS: expected a positive whole number, got "lots"`);
    } finally {
      delete process.env.PKVM_CHECK_MAX_TRACE_STEPS;
    }
  });

  test('a trace with any one value replaced is read or rejected in one line', () => {
    fc.assert(fc.property(traceFiles, fc.jsonValue(), fc.nat(), replaceOneValue), params);
  });

  function replaceOneValue(t: TraceFile, value: unknown, at: number): void {
    const raw = JSON.parse(encodeTrace(t)) as Record<string, unknown>;
    const paths: unknown[][] = [];
    const walk = (v: unknown, path: unknown[]): void => {
      paths.push(path);
      if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) walk(x, [...path, Array.isArray(v) ? Number(k) : k]);
    };
    walk(raw, []);
    const path = paths[at % paths.length];
    let mutated: unknown = value;
    if (path.length > 0) {
      const parent = path.slice(0, -1).reduce<unknown>((v, k) => (v as Record<string, unknown>)[k as string], raw) as Record<string, unknown>;
      parent[path[path.length - 1] as string] = value;
      mutated = raw;
    }
    try {
      parseTrace(JSON.stringify(mutated), FILE);
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      expect((e as Error).message).toMatch(new RegExp(`^${FILE}: [^\\n]+$`));
    }
  }

  test('the JSON error locator agrees with JSON.parse', () => {
    fc.assert(fc.property(fc.oneof(fc.json(), fc.string()), fc.nat(), fc.string({ unit: 'binary', maxLength: 2 }), locatorAgrees), params);
  });

  function locatorAgrees(text: string, at: number, junk: string): void {
    const damaged = text.slice(0, at % (text.length + 1)) + junk + text.slice(at % (text.length + 1));
    let valid = true;
    try {
      JSON.parse(damaged);
    } catch {
      valid = false;
    }
    const where = describeJsonError(damaged);
    expect(where === null).toBe(valid);
    if (where !== null) expect(where).toMatch(/^line \d+, column \d+: expected [^\n]+, found [^\n]+$/);
  }
});

describe('writing traces', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pkvm-trace-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const sample = (): TraceFile => parseTrace(CONTRACT_EXAMPLE, FILE);

  test('writes atomically under a deterministic name and reads back equal', () => {
    const out = join(dir, 'nested', 'counterexamples');
    const path = writeTrace(out, 'Snapshot: used pages stay hyp-owned!', sample());
    expect(path).toMatch(/nested\/counterexamples\/snapshot-used-pages-stay-hyp-owned-[0-9a-f]{10}\.json$/);
    expect(readdirSync(out)).toEqual([path.split('/').pop()]);
    expect(readTrace(path)).toEqual(sample());
    expect(readFileSync(path, 'utf8')).toBe(CONTRACT_EXAMPLE);
    expect(writeTrace(out, 'Snapshot: used pages stay hyp-owned!', { ...sample(), seed: 7, failure: null })).toBe(path);
    expect(readdirSync(out)).toHaveLength(1);
  });

  test('the name depends on the steps only', () => {
    const stepsText = (t: TraceFile): string => encodeTrace({ ...t, config: DEFAULT_CONFIG, inject: null, seed: null, failure: null });
    fc.assert(
      fc.property(traceFiles, traceFiles, (a, b) => {
        expect(traceFileName('p', a.steps) === traceFileName('p', b.steps)).toBe(stepsText(a) === stepsText(b));
      }),
      { ...params, numRuns: 100 },
    );
  });

  test('a bad trace throws and leaves the disk untouched', () => {
    const out = join(dir, 'never-created');
    const bad: TraceFile = { ...sample(), steps: [{ call: '__pkvm_host_share_hyp', args: { pfn: -1 } }] };
    expect(() => writeTrace(out, 'p', bad)).toThrow(/^[^\n]*never-created\/p-[0-9a-f]{10}\.json: step 1: field "args\.pfn": expected a non-negative integer, got -1$/);
    expect(() => writeTrace(out, 'p', { ...sample(), config: { memory: [], pageSize: 4096 } })).toThrow(InputError);
    expect(existsSync(out)).toBe(false);
  });

  test('a failed rename leaves no temporary file behind', () => {
    const t = sample();
    mkdirSync(join(dir, traceFileName('p', t.steps)));
    expect(() => writeTrace(dir, 'p', t)).toThrow();
    expect(readdirSync(dir)).toEqual([traceFileName('p', t.steps)]);
  });

  test('the replay command line', () => {
    expect(replayCommandLine('counterexamples/x-0123456789.json', null)).toBe('npx pkvm-check replay counterexamples/x-0123456789.json');
    expect(replayCommandLine('counterexamples/x.json', 'snapshot-used-pages-off-by-one')).toBe(
      'npx pkvm-check replay counterexamples/x.json --inject snapshot-used-pages-off-by-one',
    );
    expect(replayCommandLine("my traces/it's.json", null)).toBe(`npx pkvm-check replay 'my traces/it'\\''s.json'`);
  });
});
