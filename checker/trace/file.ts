// Trace files (`pkvm-check/trace@1`, CONTRACT.md): a counterexample or a hand-written directed test as
// the concrete calls, never just a seed, so it keeps replaying after the generators change. This file
// reads and validates them (every step through the one decoder, `decodeStep`) and writes them.
import { createHash } from 'node:crypto';
import { targetFlags, type TargetSpec } from '../targets/spec';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { MachineConfig } from '../../types/config';
import { writeFileAtomic } from '../atomic-write';
import { findBug } from '../bugs/catalog';
import { decodeStep, encodeStep, InputError, VOCABULARY, type TraceStep } from '../vocabulary';
import { encodeConfig, parseConfig } from './config';
import { describeInexactNumber, describeJsonError } from './json-error';
import { checkLimit, limit, MAX_TRACE_BYTES, MAX_TRACE_STEPS } from './limits';

export const TRACE_FORMAT = 'pkvm-check/trace@1';

export interface TraceFile {
  readonly format: typeof TRACE_FORMAT;
  readonly config: MachineConfig;
  /** The bug id the trace was found with (replayed with it unless `--inject` overrides), or null. */
  readonly inject: string | null;
  readonly seed: number | null;
  readonly steps: readonly TraceStep[];
  readonly failure: RecordedFailure | null;
}

/**
 * The failure a trace records. Its property is data: a registered name (checker/properties.ts) when
 * the checker wrote it, but any string is read back, so a hand-written trace or one saved before a
 * property was renamed stays readable.
 */
export interface RecordedFailure {
  readonly property: string;
  readonly step: number;
  readonly message: string;
}

const TOP_LEVEL = ['format', 'config', 'inject', 'seed', 'steps', 'failure'];

const show = (v: unknown): string => (v === undefined ? 'nothing' : (JSON.stringify(v) ?? String(v)));

const bad = (field: string, expected: string, value: unknown): never => {
  throw new InputError(`field "${field}": expected ${expected}, got ${show(value)}`);
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseFailure(v: unknown, stepCount: number): RecordedFailure | null {
  if (v === undefined || v === null) return null;
  if (!isObject(v)) return bad('failure', 'an object { property, step, message } or null', v);
  for (const k of Object.keys(v))
    if (!['property', 'step', 'message'].includes(k)) throw new InputError(`field "failure.${k}": unknown field (allowed: property, step, message)`);
  const { property, step, message } = v;
  if (typeof property !== 'string') bad('failure.property', 'a string', property);
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0 || step > stepCount)
    bad('failure.step', `an integer from 0 to ${stepCount} (the number of steps)`, step);
  if (typeof message !== 'string') bad('failure.message', 'a string', message);
  return { property: property as string, step: step as number, message: message as string };
}

/**
 * `__pkvm_init_vm` succeeds with a VM handle, never 0 (CONTRACT: its `expect` is omitted): an `expect`
 * of 0 there could only fail, so it is a mistake in the file, not a finding.
 */
function checkExpect(step: TraceStep, index: number): TraceStep {
  if (step.call === '__pkvm_init_vm' && step.expect === 0)
    throw new InputError(`step ${index + 1}: field "expect": __pkvm_init_vm returns a VM handle on success, so expect only a negative errno, or omit it`);
  return step;
}

/** Validates the decoded JSON of a trace; InputError messages name the field (and step), not the file. */
function decodeTrace(raw: unknown): TraceFile {
  if (!isObject(raw))
    throw new InputError(`expected an object { "format": "${TRACE_FORMAT}", "steps": [...] }, got ${Array.isArray(raw) ? 'an array' : show(raw)}`);
  if (raw.format !== TRACE_FORMAT) bad('format', `"${TRACE_FORMAT}"`, raw.format);
  for (const k of Object.keys(raw)) if (!TOP_LEVEL.includes(k)) throw new InputError(`field "${k}": unknown field (allowed: ${TOP_LEVEL.join(', ')})`);
  const config = parseConfig(raw.config);
  const inject = raw.inject ?? null;
  if (inject !== null && (typeof inject !== 'string' || !findBug(inject))) bad('inject', 'a bug id listed by `pkvm-check bugs`, or null', inject);
  const seed = raw.seed ?? null;
  if (seed !== null && (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0)) bad('seed', 'a non-negative integer or null', seed);
  if (!Array.isArray(raw.steps)) return bad('steps', 'an array of steps { call, args, expect? }', raw.steps);
  checkLimit(MAX_TRACE_STEPS, raw.steps.length, 'field "steps"');
  const steps: TraceStep[] = [];
  raw.steps.forEach((s: unknown, i: number) => steps.push(checkExpect(decodeStep(s, i, steps), i)));
  const failure = parseFailure(raw.failure, steps.length);
  return { format: TRACE_FORMAT, config, inject: inject as string | null, seed: seed as number | null, steps, failure };
}

/** Parses and validates a trace's text; any problem is one InputError line starting with `file`. */
export function parseTrace(text: string, file: string): TraceFile {
  return decodeJson(text, file, decodeTrace);
}

/** JSON text decoded by `decode`; any problem (syntax, an inexact number, a bad field) is one InputError line starting with `file`. */
function decodeJson<T>(text: string, file: string, decode: (raw: unknown) => T): T {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    throw new InputError(`${file}: not JSON: ${describeJsonError(body) ?? 'unreadable'}`);
  }
  const inexact = describeInexactNumber(body);
  if (inexact !== null) throw new InputError(`${file}: ${inexact}`);
  try {
    return decode(raw);
  } catch (e) {
    if (e instanceof InputError) throw new InputError(`${file}: ${e.message}`);
    throw e;
  }
}

/**
 * A file's text, reading at most the size cap plus one byte: a file (or a device like /dev/zero) that
 * is larger is refused before it fills memory.
 */
function readCapped(file: string): string {
  const cap = limit(MAX_TRACE_BYTES);
  const fd = openSync(file, 'r');
  try {
    if (fstatSync(fd).isDirectory()) throw Object.assign(new Error('a directory'), { code: 'EISDIR' });
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(1 << 20, cap + 1 - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > cap) throw new InputError(`${file}: larger than the limit of ${cap} bytes (raise it with ${MAX_TRACE_BYTES.env}=N)`);
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Reads and validates a trace file. */
export function readTrace(file: string): TraceFile {
  return parseTrace(readText(file), file);
}

/** A file's text, capped; an unreadable file is one InputError line. */
function readText(file: string): string {
  try {
    return readCapped(file);
  } catch (e) {
    if (e instanceof InputError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new InputError(`${file}: cannot read the file (${err.code ?? err.message.split('\n')[0]})`);
  }
}

/**
 * Reads `--config FILE`: a JSON object like a trace's `config` (`{ "memory": [[first, pages], ...],
 * "pageSize": 4096, "kernel"?: "6.12" }`), validated by parseConfig. Any problem is one InputError
 * line starting with `file`.
 */
export function readConfigFile(file: string): MachineConfig {
  return decodeJson(readText(file), file, parseConfig);
}

/** JSON on one line with spaces after ':' and ',', the CONTRACT's layout for steps. */
function inline(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(inline).join(', ')}]`;
  if (isObject(v)) {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined);
    return entries.length === 0 ? '{}' : `{ ${entries.map(([k, x]) => `${JSON.stringify(k)}: ${inline(x)}`).join(', ')} }`;
  }
  return JSON.stringify(v);
}

/** One step as one line, arguments in the vocabulary's order whatever the order of the object given. */
function encodeStepLine(step: TraceStep): string {
  const { call, args, expect } = encodeStep(step) as { call: string; args: Record<string, unknown>; expect?: unknown };
  const ordered: Record<string, unknown> = {};
  for (const k of Object.keys(VOCABULARY[step.call])) if (Object.hasOwn(args, k)) ordered[k] = args[k];
  return inline({ call, args: ordered, expect });
}

/** The steps block of a trace: the bytes its file name is hashed from. */
function encodeSteps(steps: readonly TraceStep[]): string {
  return steps.length === 0 ? '[]' : `[\n${steps.map((s) => `    ${encodeStepLine(s)}`).join(',\n')}\n  ]`;
}

/** The file's text: 2-space indented, one step per line (readable diffs), deterministic bytes. */
export function encodeTrace(t: TraceFile): string {
  const failure = t.failure && { property: t.failure.property, step: t.failure.step, message: t.failure.message };
  return [
    '{',
    `  "format": ${JSON.stringify(TRACE_FORMAT)},`,
    `  "config": ${encodeConfig(t.config)},`,
    `  "inject": ${JSON.stringify(t.inject)},`,
    `  "seed": ${JSON.stringify(t.seed)},`,
    `  "steps": ${encodeSteps(t.steps)},`,
    `  "failure": ${inline(failure)}`,
    '}',
    '',
  ].join('\n');
}

/** `property` reduced to [a-z0-9-] for a file name ("trace" if nothing is left). */
export function sanitizeProperty(property: string): string {
  const s = property
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60)
    .replace(/-+$/, '');
  return s === '' ? 'trace' : s;
}

/** `<property>-<first 10 hex digits of sha256 over the encoded steps>.json`. */
export function traceFileName(property: string, steps: readonly TraceStep[]): string {
  const hash = createHash('sha256').update(encodeSteps(steps)).digest('hex').slice(0, 10);
  return `${sanitizeProperty(property)}-${hash}.json`;
}

/**
 * Writes `t` into `dir` (created if needed) atomically and returns the path. The same steps always
 * give the same name, different steps a different one, so parallel shards never overwrite each
 * other's traces. The text is validated by reading it back first: an invalid trace throws an
 * InputError and nothing on disk changes.
 */
export function writeTrace(dir: string, property: string, t: TraceFile): string {
  const path = join(dir, traceFileName(property, t.steps));
  const text = encodeTrace(t);
  parseTrace(text, path);
  writeFileAtomic(path, text);
  return path;
}

/** Quotes a path for a POSIX shell only when it needs it. */
const shellQuote = (s: string): string => (/^[A-Za-z0-9_./@%+=:,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/**
 * The one command that replays a trace: `npx pkvm-check replay counterexamples/x.json`. When the trace
 * was found with an injected bug, `--inject BUG` is spelled out although the file records it too: the
 * line then says in a CI log which bug it reproduces, and it still does if the file's field is edited.
 * Replaying on the correct implementation is the same command with `--inject none`.
 */
export function replayCommandLine(path: string, inject: string | null, target?: TargetSpec): string {
  const flag = inject === null ? '' : ` --inject ${shellQuote(inject)}`;
  const on = targetFlags(target).map(shellQuote).join(' ');
  return `npx pkvm-check replay ${shellQuote(path)}${flag}${on ? ` ${on}` : ''}`;
}
