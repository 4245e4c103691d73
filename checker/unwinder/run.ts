// Runs a scenario's panic on the implementation under watch: every memory access of the unwind is
// checked against where it may go, and counted against a budget computed from the stack sizes, so a
// broken unwinder is a reported violation, never a hang or a silent stray read.
import type { HypPanicExit } from '../../hyp/stacktrace';
import { OVERFLOW_STACK_SIZE, overflowStackBase, hypStackBase, pkvmStacktraceHypVa, pkvmStacktraceKernVa } from '../../hyp/stacktrace-layout';
import { MemoryFault, type AddressSpace } from '../../hyp/stacktrace-memory';
import type { UnwindArgs } from '../../types/calls';
import type { UnwinderBug } from '../bugs/unwinder';
import { applyCorruptions, buildScenario, targetBytes, type Scenario } from './scenario';
import { P, type PropertyName } from '../properties';

export interface UnwindViolation {
  readonly property: PropertyName;
  readonly message: string;
}

class Violation extends Error {
  constructor(readonly v: UnwindViolation) {
    super(v.message);
  }
}

export interface HypRun {
  readonly scenario: Scenario;
  /** The host's log, as far as it got. */
  readonly lines: readonly string[];
  /** The hyp stack page and the overflow stack as the unwind found them. */
  readonly stacks: { readonly hyp: DataView; readonly overflow: DataView };
  /** What __hyp_do_panic handed the host (null if the run stopped before). */
  readonly exit: HypPanicExit | null;
  readonly violation: UnwindViolation | null;
}

const hex = (x: bigint) => `0x${x.toString(16)}`;
const inside = (addr: bigint, low: bigint, bytes: number) => addr >= low && addr + 8n <= low + BigInt(bytes);

/** Frame records the two stacks can hold: no correct unwind takes more steps than this. */
export const maxRecords = (pageSize: number): number => (pageSize + OVERFLOW_STACK_SIZE) / 16;

/** The access policy of the unwind, for an observer on the scenario's memory. */
function watch(sc: Scenario): (space: AddressSpace, addr: bigint, write: boolean) => void {
  const l = sc.layout;
  const N = l.stacktrace_entries;
  const isProtected = sc.args.mode === 'protected';
  const budget = 2 * maxRecords(l.page_size);
  const hypLow = hypStackBase(l);
  const ovfLow = overflowStackBase(l);
  const ovfKern = l.percpu_kern_va + BigInt(l.overflow_stack_off);
  const stacks = `the hyp stack [${hex(hypLow)}, ${hex(l.stack_hyp_va)}) and the overflow stack [${hex(ovfLow)}, ${hex(ovfLow + 4096n)})`;
  let unwindReads = 0;
  let bufferReads = 0;
  const fail = (property: PropertyName, message: string): never => {
    throw new Violation({ property, message });
  };
  const countUnwindRead = () => {
    if (++unwindReads > budget)
      fail(P.unwindBounded, `the unwind did not stop within ${budget / 2} steps (the two stacks hold at most ${budget / 2} frame records)`);
  };
  return (space, addr, write) => {
    const who = space === 'el2' ? 'EL2' : 'the host';
    if (write) {
      const buf = pkvmStacktraceHypVa(l);
      if (space === 'el2' && isProtected && inside(addr, buf, N * 8) && (addr - buf) % 8n === 0n) return;
      const where = space === 'el2' && isProtected ? ` (entry ${(addr - buf) / 8n} of the ${N}-entry pkvm_stacktrace buffer)` : '';
      fail(P.stacktraceBufferTerminated, `${who} wrote ${hex(addr)} during the unwind${where}: only pkvm_stacktrace[0..${N - 1}] may be written`);
    }
    if (space === 'el2') {
      if (!isProtected || !(inside(addr, hypLow, l.page_size) || inside(addr, ovfLow, OVERFLOW_STACK_SIZE)))
        fail(P.unwindReadsInsideStacks, `EL2 read ${hex(addr)}, outside ${stacks}`);
      return countUnwindRead();
    }
    if (isProtected) {
      const buf = pkvmStacktraceKernVa(l);
      if (!inside(addr, buf, N * 8)) fail(P.hostReaderBounded, `the host read ${hex(addr)}: entry ${(addr - buf) / 8n} of the ${N}-entry pkvm_stacktrace buffer`);
      if (++bufferReads > N) fail(P.hostReaderBounded, `the host read more than ${N} entries of pkvm_stacktrace`);
      return;
    }
    if (!(inside(addr, l.kvm_arm_hyp_stack_page, l.page_size) || inside(addr, ovfKern, OVERFLOW_STACK_SIZE)))
      fail(P.unwindReadsInsideStacks, `the host read ${hex(addr)}, outside its aliases of ${stacks}`);
    countUnwindRead();
  };
}

/** A copy of a stack's bytes. */
const snapshot = (v: DataView) => new DataView(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));

/** The saved buffer must hold at most N - 1 entries and a 0. */
function checkTerminated(sc: Scenario): void {
  const buf = targetBytes(sc, 'stacktrace');
  const N = sc.layout.stacktrace_entries;
  for (let i = 0; i < N; i++) if (buf.getBigUint64(i * 8, true) === 0n) return;
  throw new Violation({ property: P.stacktraceBufferTerminated, message: `EL2 left no 0 in the ${N}-entry pkvm_stacktrace buffer` });
}

/** Builds the scenario, corrupts it, and runs the panic: EL2's save, then the host's printing in args.format. */
export function runHyp(args: UnwindArgs, bugs: readonly UnwinderBug[]): HypRun {
  const sc = buildScenario(args, bugs);
  applyCorruptions(sc, ['hyp', 'overflow']);
  const stacks = { hyp: snapshot(targetBytes(sc, 'hyp')), overflow: snapshot(targetBytes(sc, 'overflow')) };
  const mem = sc.memory.mem;
  let exit: HypPanicExit | null = null;
  let violation: UnwindViolation | null = null;
  mem.observer = watch(sc);
  try {
    exit = sc.cpu.hyp_panic_tail();
    if (args.mode === 'protected') checkTerminated(sc);
    applyCorruptions(sc, ['stacktrace']);
    sc.st.nvhe_hyp_panic_handler(exit);
  } catch (e) {
    if (e instanceof Violation) violation = e.v;
    else if (e instanceof MemoryFault) violation = { property: P.unwindReadsInsideStacks, message: e.message };
    else throw e;
  } finally {
    mem.observer = null;
  }
  return { scenario: sc, lines: sc.st.log, stacks, exit, violation };
}

/** Entries in a printed call trace (lines " [<addr>] sym"). */
export const countEntries = (lines: readonly string[]): number => lines.filter((l) => l.startsWith(' [<')).length;
