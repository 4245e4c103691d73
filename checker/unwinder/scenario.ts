// Builds an unwinder scenario from its call's arguments: one simulated CPU, a hyp call chain on its
// stack that ends in a panic, and the corruptions written over its memory.
import seedrandom from 'seedrandom';
import { NvheStacktrace } from '../../hyp/stacktrace';
import { NvheCpu, nvheCpuMemory, type NvheCpuMemory, type PanicPoint } from '../../hyp/stacktrace-cpu';
import { OVERFLOW_STACK_SIZE, hypStackBase, nvheLayout, type NvheLayout } from '../../hyp/stacktrace-layout';
import { u64 } from '../../hyp/stacktrace-memory';
import { POOL_FUNCTIONS, hypFunction } from '../../hyp/symbols';
import type { StackCorruption, UnwindArgs } from '../../types/calls';
import type { UnwinderBug } from '../bugs/unwinder';

export type CorruptionTarget = StackCorruption['stack'];

export interface Scenario {
  readonly args: UnwindArgs;
  readonly layout: NvheLayout;
  readonly memory: NvheCpuMemory;
  readonly st: NvheStacktrace;
  readonly cpu: NvheCpu;
  readonly panic: PanicPoint;
}

/** Every scenario enters from the host and runs a vCPU, as in the cover letter's sample. */
const BASE_CHAIN = ['handle_trap', 'handle___kvm_vcpu_run', '__kvm_vcpu_run'];
/** A pool function with the smallest frame (16 bytes), used to fill the stack exactly. */
const SMALLEST = POOL_FUNCTIONS.reduce((a, b) => (b.frame < a.frame ? b : a));

/**
 * The call chain, shaped by the seed:
 * - `recursive_death`: `depth` random calls (while they use less than half the stack), then
 *   recursive_death calls itself until its prologue hits the guard page;
 * - `call_chain`: `depth` random calls, as many as fit with hyp_panic's frame below them (a depth
 *   too large fills the stack exactly: hyp_panic's record lands on the stack's lowest 16 bytes), then
 *   a data abort in the last one.
 */
function runChain(cpu: NvheCpu, args: UnwindArgs): void {
  const rng = seedrandom(`nvhe-chain:${args.seed}`);
  const base = hypStackBase(cpu.layout);
  const room = () => Number(cpu.sp - base) - hypFunction('hyp_panic').frame;
  const pick = () => POOL_FUNCTIONS[Math.floor(rng() * POOL_FUNCTIONS.length)];
  cpu.__host_exit();
  for (const f of BASE_CHAIN) cpu.bl(f);
  if (args.scenario === 'call_chain') {
    for (let i = 0; i < args.depth; i++) {
      let f = pick();
      if (f.frame > room()) f = SMALLEST;
      if (f.frame > room()) break;
      cpu.bl(f.name);
    }
    cpu.data_abort();
    return;
  }
  for (let i = 0; i < args.depth && Number(cpu.sp - base) > cpu.layout.page_size / 2; i++) cpu.bl(pick().name);
  while (cpu.bl('recursive_death'));
}

/** The scenario, up to the point where hyp_panic is about to unwind; stack corruptions not applied. */
export function buildScenario(args: UnwindArgs, bugs: readonly UnwinderBug[] = []): Scenario {
  if (args.scenario !== 'recursive_death' && args.scenario !== 'call_chain') throw new Error(`unknown unwinder scenario ${args.scenario}`);
  const layout = nvheLayout(args.seed, args.page_size);
  const isProtected = args.mode === 'protected';
  const memory = nvheCpuMemory(layout, isProtected);
  const st = new NvheStacktrace(layout, memory.mem, { protected: isProtected, format: args.format ?? 'upstream' });
  for (const b of bugs) b.inject(st);
  const cpu = new NvheCpu(layout, memory, st);
  cpu.fill_stale_memory();
  runChain(cpu, args);
  if (!cpu.panic) throw new Error(`scenario ${args.scenario} did not panic`);
  return { args, layout, memory, st, cpu, panic: cpu.panic };
}

/** The bytes behind a corruption target: the stack page, the overflow stack, the stacktrace buffer. */
export function targetBytes(sc: Pick<Scenario, 'layout' | 'memory'>, target: CorruptionTarget): DataView {
  const { layout: l, memory: m } = sc;
  if (target === 'hyp') return new DataView(m.hyp_stack_page.buffer, m.hyp_stack_page.byteOffset, l.page_size);
  const off = target === 'overflow' ? l.overflow_stack_off : l.pkvm_stacktrace_off;
  const len = target === 'overflow' ? OVERFLOW_STACK_SIZE : l.stacktrace_entries * 8;
  return new DataView(m.percpu.buffer, m.percpu.byteOffset + off, len);
}

/**
 * The words a corruption writes into a target of `size` bytes, in order: word i at offset + i * stride
 * holding value + i * step. Words not wholly inside the target are dropped, and so are words at
 * offsets that are not multiples of 8 on the stacktrace buffer (an array of words).
 */
export function corruptionWords(c: StackCorruption, size: number): { readonly offset: number; readonly value: bigint }[] {
  const count = c.count ?? 1;
  const stride = c.stride ?? 8;
  const step = BigInt(c.step ?? 0);
  const value = BigInt(c.value);
  const fits = (o: number) => o + 8 <= size && (c.stack !== 'stacktrace' || o % 8 === 0);
  if (count === 0) return [];
  if (stride === 0) return fits(c.offset) ? [{ offset: c.offset, value: u64(value + BigInt(count - 1) * step) }] : [];
  const out: { offset: number; value: bigint }[] = [];
  for (let i = 0; i < count && c.offset + i * stride + 8 <= size; i++) {
    const offset = c.offset + i * stride;
    if (fits(offset)) out.push({ offset, value: u64(value + BigInt(i) * step) });
  }
  return out;
}

/** Writes the corruptions aimed at the given targets straight into memory (nobody's access). */
export function applyCorruptions(sc: Scenario, targets: readonly CorruptionTarget[]): void {
  for (const c of sc.args.corrupt) {
    if (!targets.includes(c.stack)) continue;
    const view = targetBytes(sc, c.stack);
    for (const w of corruptionWords(c, view.byteLength)) view.setBigUint64(w.offset, w.value, true);
  }
}
