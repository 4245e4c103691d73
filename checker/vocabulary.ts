// The one decoder/validator of the call vocabulary. Generators, the runner, trace files and reports
// all speak in `TraceStep`s: a call (kernel name) with its arguments as data. A `vm` argument may be a
// reference "$N" to the handle returned by step N (steps count from 1).
import type { ArgsOf, Call, CallName, Prot, StackCorruption, UnwindFormat, UnwindMode } from '../types/calls';
import { ERRNO_NAMES } from '../types/errno';
import { OUTCOME_NAMES } from '../types/kernel';

/** A reference to the VM handle returned by an earlier step (1-based). */
export interface VmRef {
  readonly ref: number;
}

type WithRefs<A> = { readonly [K in keyof A]: K extends 'vm' ? Exclude<A[K], number> | number | VmRef : A[K] };

/** A call as stored in a trace: arguments may refer to earlier steps' results. */
export type TraceStep = {
  [N in CallName]: { readonly call: N; readonly args: WithRefs<ArgsOf<N>>; readonly expect?: number };
}[CallName];

/** An input error: which field, and what was expected. The CLI prints it as one line, exit 2. */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

type Parser<T> = (value: unknown, field: string) => T;

const MAX_U64_SAFE = Number.MAX_SAFE_INTEGER;

const fail = (field: string, expected: string, value: unknown): never => {
  throw new InputError(`field "${field}": expected ${expected}, got ${JSON.stringify(value) ?? String(value)}`);
};

const u64: Parser<number> = (v, f) =>
  typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_U64_SAFE ? v : fail(f, 'a non-negative integer', v);

const bool: Parser<boolean> = (v, f) => (typeof v === 'boolean' ? v : fail(f, 'true or false', v));

const prot: Parser<Prot> = (v, f) => {
  if (typeof v !== 'string' || !/^R?W?X?$/.test(v)) return fail(f, 'a string over the letters R, W, X (in that order)', v);
  return { r: v.includes('R'), w: v.includes('W'), x: v.includes('X') };
};

const vmRef: Parser<number | VmRef> = (v, f) => {
  if (typeof v === 'string') {
    const m = /^\$([1-9][0-9]*)$/.exec(v);
    return m ? { ref: Number(m[1]) } : fail(f, 'a VM handle or "$N" (the handle returned by step N)', v);
  }
  return u64(v, f);
};

const u64List: Parser<readonly number[]> = (v, f) =>
  Array.isArray(v) ? v.map((x, i) => u64(x, `${f}[${i}]`)) : fail(f, 'an array of non-negative integers', v);

const oneOf =
  <T extends string>(choices: readonly T[]): Parser<T> =>
  (v, f) =>
    typeof v === 'string' && (choices as readonly string[]).includes(v) ? (v as T) : fail(f, `one of ${choices.join(', ')}`, v);

const hex64: Parser<string> = (v, f) =>
  typeof v === 'string' && /^0x[0-9a-fA-F]{1,16}$/.test(v) ? v.toLowerCase() : fail(f, 'a 64-bit hex string "0x..."', v);

const corruption: Parser<StackCorruption> = (v, f) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(f, 'an object { stack, offset, value, count?, stride?, step? }', v);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['stack', 'offset', 'value', 'count', 'stride', 'step'].includes(k)) fail(`${f}.${k}`, 'no such field', o[k]);
  const c: { -readonly [K in keyof StackCorruption]: StackCorruption[K] } = {
    stack: oneOf(['hyp', 'overflow', 'stacktrace'] as const)(o.stack, `${f}.stack`),
    offset: u64(o.offset, `${f}.offset`),
    value: hex64(o.value, `${f}.value`),
  };
  for (const k of ['count', 'stride', 'step'] as const) if (o[k] !== undefined) c[k] = u64(o[k], `${f}.${k}`);
  return c;
};

const corruptions: Parser<readonly StackCorruption[]> = (v, f) =>
  Array.isArray(v) ? v.map((x, i) => corruption(x, `${f}[${i}]`)) : fail(f, 'an array of corruptions', v);

interface ArgSpec {
  readonly parse: Parser<unknown>;
  /** Value used when the argument is absent; absent means required. */
  readonly default?: unknown;
  /** An absent argument stays absent in the decoded step (the default is what its reader assumes). */
  readonly keepAbsent?: true;
}

const req = (parse: Parser<unknown>): ArgSpec => ({ parse });
const opt = (parse: Parser<unknown>, dflt: unknown): ArgSpec => ({ parse, default: dflt });
/** Optional, and absent when not given: an argument added later, so that older steps decode as they did. */
const absentMeans = (parse: Parser<unknown>, dflt: unknown): ArgSpec => ({ parse, default: dflt, keepAbsent: true });

const range = { pfn: req(u64), nr_pages: req(u64) };

/** Every call, its arguments, and how each is validated. */
export const VOCABULARY: { readonly [N in CallName]: { readonly [K in keyof ArgsOf<N>]-?: ArgSpec } } = {
  __pkvm_host_share_hyp: { pfn: req(u64) },
  __pkvm_host_unshare_hyp: { pfn: req(u64) },
  __pkvm_host_donate_hyp: range,
  __pkvm_hyp_donate_host: range,
  __pkvm_host_share_ffa: range,
  __pkvm_host_unshare_ffa: range,
  hyp_pin_shared_mem: range,
  hyp_unpin_shared_mem: range,
  // `vm` absent: the call acts on the vCPU loaded by an earlier __pkvm_vcpu_load (types/calls.ts LoadedVm).
  __pkvm_host_share_guest: { pfn: req(u64), gfn: req(u64), nr_pages: req(u64), vm: opt(vmRef, null), prot: req(prot) },
  __pkvm_host_unshare_guest: { gfn: req(u64), nr_pages: req(u64), vm: req(vmRef) },
  __pkvm_host_relax_perms_guest: { gfn: req(u64), prot: req(prot), vm: opt(vmRef, null) },
  __pkvm_host_wrprotect_guest: { gfn: req(u64), nr_pages: req(u64), vm: req(vmRef) },
  __pkvm_host_test_clear_young_guest: { gfn: req(u64), nr_pages: req(u64), mkold: req(bool), vm: req(vmRef) },
  __pkvm_host_mkyoung_guest: { gfn: req(u64), vm: opt(vmRef, null) },
  __pkvm_vcpu_load: { vm: req(vmRef), vcpu: opt(u64, 0) },
  __pkvm_vcpu_put: {},
  __pkvm_init_vm: range,
  __pkvm_teardown_vm: { vm: req(vmRef) },
  host_access: { pfn: req(u64), write: req(bool) },
  __pkvm_host_stage2_snapshot: {
    desc: req(u64),
    pgd: req(u64),
    pgd_pages: req(u64),
    mc: req(u64List),
    mc_nr_pages: req(u64),
    mc_tail: opt(u64, 0),
    used: req(u64),
    num_used_pages: req(u64),
    used_pages_indx: opt(u64, 0),
  },
  hyp_panic: {
    scenario: req(oneOf(['recursive_death', 'call_chain'] as const)),
    mode: req(oneOf<UnwindMode>(['protected', 'nonprotected'])),
    page_size: opt((v, f) => (v === 4096 || v === 16384 || v === 65536 ? v : fail(f, '4096, 16384 or 65536', v)), 4096),
    depth: opt(u64, 0),
    seed: opt(u64, 0),
    corrupt: opt(corruptions, []),
    format: absentMeans(oneOf<UnwindFormat>(['upstream', 'v5']), 'upstream'),
  },
};

export const CALL_NAMES = Object.keys(VOCABULARY) as CallName[];

const isCallName = (s: unknown): s is CallName => typeof s === 'string' && Object.hasOwn(VOCABULARY, s);

/**
 * Parses an expected result: 0, a negative errno, its name ("-EPERM"), "panic", "not-supported", or a
 * positive value (test_clear_young's 1, a handle), as a number or in hex ("0x1001").
 */
export function parseResult(v: unknown, field: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v === 'string') {
    if (v === '0') return 0;
    if (/^0x[0-9a-f]{1,13}$/i.test(v)) return Number(v);
    const outcome = Object.entries(OUTCOME_NAMES).find(([, name]) => name === v);
    if (outcome) return Number(outcome[0]);
    const m = /^-(E[A-Z0-9]+)$/.exec(v);
    const code = m ? Object.entries(ERRNO_NAMES).find(([, name]) => name === m[1]) : undefined;
    if (code) return -Number(code[0]);
  }
  return fail(field, '0, a negative errno (a number or a name like "-EPERM"), "panic", "not-supported" or a positive result', v);
}

/**
 * Decodes one step of untrusted input. `index` is the step's 0-based position; `$N` references must
 * point at an earlier `__pkvm_init_vm` step of `previous`.
 */
export function decodeStep(raw: unknown, index: number, previous: readonly TraceStep[]): TraceStep {
  const where = `step ${index + 1}`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InputError(`${where}: expected an object { call, args, expect? }`);
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['call', 'args', 'expect'].includes(k)) throw new InputError(`${where}: unknown field "${k}"`);
  if (!isCallName(o.call)) throw new InputError(`${where}: field "call": unknown call ${JSON.stringify(o.call)}`);
  const spec = VOCABULARY[o.call] as Record<string, ArgSpec>;
  const rawArgs = o.args ?? {};
  if (typeof rawArgs !== 'object' || rawArgs === null || Array.isArray(rawArgs)) throw new InputError(`${where}: field "args": expected an object`);
  const given = rawArgs as Record<string, unknown>;
  for (const k of Object.keys(given)) if (!Object.hasOwn(spec, k)) throw new InputError(`${where}: unknown argument "args.${k}" for ${o.call}`);
  const args: Record<string, unknown> = {};
  try {
    for (const [name, s] of Object.entries(spec)) {
      if (!Object.hasOwn(given, name)) {
        if (!Object.hasOwn(s, 'default')) throw new InputError(`field "args.${name}": missing (required by ${o.call})`);
        if (!s.keepAbsent) args[name] = s.default;
        continue;
      }
      args[name] = s.parse(given[name], `args.${name}`);
    }
    const ref = args.vm;
    if (typeof ref === 'object' && ref !== null) {
      const target = previous[(ref as VmRef).ref - 1];
      if ((ref as VmRef).ref > index || target?.call !== '__pkvm_init_vm')
        throw new InputError(`field "args.vm": "$${(ref as VmRef).ref}" must name an earlier __pkvm_init_vm step`);
    }
    const step = { call: o.call, args } as TraceStep;
    if (o.expect === undefined) return step;
    return { ...step, expect: parseResult(o.expect, 'expect') };
  } catch (e) {
    if (e instanceof InputError && !e.message.startsWith('step ')) throw new InputError(`${where}: ${e.message}`);
    throw e;
  }
}

/** Encodes a step back to the JSON shape of a trace file (inverse of decodeStep). */
export function encodeStep(step: TraceStep): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  const spec = VOCABULARY[step.call] as Record<string, ArgSpec>;
  for (const [k, v] of Object.entries(step.args as Record<string, unknown>)) {
    if (v === undefined && spec[k].keepAbsent) continue;
    if (Object.hasOwn(spec[k], 'default') && JSON.stringify(spec[k].default) === JSON.stringify(v)) continue;
    if (k === 'vm' && typeof v === 'object' && v !== null) args[k] = `$${(v as VmRef).ref}`;
    else if (k === 'prot') args[k] = formatProt(v as Prot);
    else args[k] = v;
  }
  const out: Record<string, unknown> = { call: step.call, args };
  if (step.expect !== undefined) out.expect = formatResult(step.expect);
  return out;
}

/** A number as the kernel prints addresses and pfns: `0x40003`. */
export const hex = (n: number): string => `0x${n.toString(16)}`;

export const formatProt = (p: Prot): string => `${p.r ? 'R' : ''}${p.w ? 'W' : ''}${p.x ? 'X' : ''}`;

/** 0, a handle in hex, "-ENAME", "panic" or "not-supported". */
export function formatResult(r: number): string | number {
  if (r === 0) return 0;
  if (r > 0) return `0x${r.toString(16)}`;
  if (OUTCOME_NAMES[r] !== undefined) return OUTCOME_NAMES[r];
  const name = ERRNO_NAMES[-r];
  return name ? `-${name}` : r;
}

/** Resolves "$N" references against the results of earlier steps, giving what model and hyp run. */
export function resolveStep(step: TraceStep, results: readonly number[]): Call {
  const vm = (step.args as { vm?: number | VmRef | null }).vm;
  if (vm === undefined || vm === null || typeof vm === 'number') return step as Call;
  const handle = results[vm.ref - 1];
  if (handle === undefined || handle < 0)
    throw new InputError(`args.vm: "$${vm.ref}" refers to step ${vm.ref}, which returned no handle (${handle === undefined ? 'not run' : formatResult(handle)})`);
  return { call: step.call, args: { ...step.args, vm: handle } } as Call;
}

/** One line in kernel style: `__pkvm_host_share_hyp(pfn=0x40003)`. */
export function formatCall(step: TraceStep): string {
  const parts = Object.entries(encodeStep(step).args as Record<string, unknown>).map(([k, v]) => {
    if (typeof v === 'number' && (k === 'pfn' || k === 'gfn' || k === 'desc' || k === 'pgd' || k === 'used' || k === 'mc_tail')) return `${k}=0x${v.toString(16)}`;
    if (Array.isArray(v) && k === 'mc') return `${k}=[${v.map((x: number) => `0x${x.toString(16)}`).join(',')}]`;
    return `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`;
  });
  return `${step.call}(${parts.join(', ')})`;
}
