// What the model is told about a run: the stacks as the unwind found them, where the unwind started,
// the panic's addresses, the image's symbols and offsets, what was written over the buffer, and the
// format the host prints in.
import { nvheStacks, type HypPanicExit } from '../../hyp/stacktrace';
import { VA_BITS } from '../../hyp/stacktrace-layout';
import { runtimeSymbols } from '../../hyp/symbols';
import type { UnwindSpec } from '../../model/unwind';
import type { HypRun } from './run';
import { corruptionWords } from './scenario';

export function modelSpec(run: HypRun, exit: HypPanicExit): UnwindSpec {
  const sc = run.scenario;
  const l = sc.layout;
  const ranges = nvheStacks(l);
  const stacks = [
    { low: ranges.hyp[0], high: ranges.hyp[1], bytes: run.stacks.hyp },
    { low: ranges.overflow[0], high: ranges.overflow[1], bytes: run.stacks.overflow },
  ];
  const read = (addr: bigint): bigint => {
    const s = stacks.find((t) => addr >= t.low && addr + 8n <= t.high);
    if (!s) throw new Error(`model read 0x${addr.toString(16)} outside the stacks`);
    return s.bytes.getBigUint64(Number(addr - s.low), true);
  };
  const bufferWrites = sc.args.corrupt
    .filter((c) => c.stack === 'stacktrace')
    .flatMap((c) => corruptionWords(c, l.stacktrace_entries * 8).map((w) => [w.offset / 8, w.value] as const));
  return {
    mode: sc.args.mode,
    format: sc.args.format ?? 'upstream',
    stacks: stacks.map(({ low, high }) => ({ low, high })),
    read,
    fp: sc.panic.fp,
    pc: sc.panic.pc,
    entries: l.stacktrace_entries,
    bufferWrites,
    elrVirt: exit.elr_virt,
    elrPhys: exit.elr_phys,
    kimageVoffset: l.kimage_voffset,
    kaslrOffset: l.kaslr_offset,
    vaBits: VA_BITS,
    symbols: runtimeSymbols(l.kaslr_offset),
  };
}
