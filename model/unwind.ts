// The nVHE hypervisor stack unwinder as a spec (docs/semantics.md §9; the same in 6.12 and 6.16): from
// the contents of the two EL2 stacks, which return addresses the unwinding rules admit, what the host
// keeps of them, and the lines it prints.

export interface SpecStack {
  /** Hyp VAs: the stack is [low, high). */
  readonly low: bigint;
  readonly high: bigint;
}

export interface SpecSymbol {
  readonly name: string;
  /** Run-time address (with KASLR) and size. */
  readonly start: bigint;
  readonly size: bigint;
}

export interface UnwindSpec {
  readonly mode: 'protected' | 'nonprotected';
  readonly format: 'upstream' | 'v5';
  readonly stacks: readonly SpecStack[];
  /** The 64-bit word at a hyp VA inside one of the stacks. */
  readonly read: (addr: bigint) => bigint;
  /** Where the unwind starts: hyp_panic's frame and pc. */
  readonly fp: bigint;
  readonly pc: bigint;
  /** Entries of the protected-mode buffer (N). */
  readonly entries: number;
  /** Words written over the buffer after EL2 filled it (index, value). */
  readonly bufferWrites: readonly (readonly [number, bigint])[];
  readonly elrVirt: bigint;
  readonly elrPhys: bigint;
  readonly kimageVoffset: bigint;
  readonly kaslrOffset: bigint;
  readonly vaBits: bigint;
  readonly symbols: readonly SpecSymbol[];
}

export type Stop = 'misaligned' | 'off-stack' | 'stack-left' | 'consumed';

const u64 = (x: bigint): bigint => BigInt.asUintN(64, x);

/**
 * The admitted pcs: the starting pc, then the lr of every record the walk accepts. A record at fp is
 * accepted when fp is 8-byte aligned, [fp, fp + 16) lies inside one stack, that stack is not one the
 * walk has already left, and, on the stack of the previous record, fp is at least 16 bytes above it:
 * records never overlap (the kernel consumes each stack up to the end of the record it read,
 * docs/semantics.md §9). As in the kernel, nothing else orders the stacks: a real panic only ever
 * goes OVERFLOW then HYP, but a corrupted walk that starts on the hyp stack may still cross to the
 * overflow stack, once.
 */
export function admitted(spec: UnwindSpec): { readonly pcs: bigint[]; readonly stop: Stop } {
  const pcs = [spec.pc];
  const walk = (fp: bigint, on: SpecStack | null, prevFp: bigint, left: readonly SpecStack[]): Stop => {
    if (fp % 8n !== 0n) return 'misaligned';
    const s = spec.stacks.find((t) => t.low <= fp && fp + 16n <= t.high);
    if (!s) return 'off-stack';
    if (left.includes(s)) return 'stack-left';
    if (s === on && fp < prevFp + 16n) return 'consumed';
    pcs.push(spec.read(fp + 8n));
    return walk(spec.read(fp), s, fp, on && on !== s ? [...left, on] : left);
  };
  return { pcs, stop: walk(spec.fp, null, 0n, []) };
}

/**
 * What the host prints, in order: every admitted pc, or in protected mode what the buffer holds (it
 * starts zeroed: a per-CPU variable nothing wrote before).
 */
export function hostEntries(spec: UnwindSpec): bigint[] {
  const { pcs } = admitted(spec);
  if (spec.mode === 'nonprotected') return pcs;
  // EL2 keeps at most N - 1 entries and a 0 after them; the host reads at most N, up to a 0.
  const buffer: bigint[] = Array(spec.entries).fill(0n);
  pcs.slice(0, spec.entries - 1).forEach((pc, i) => (buffer[i] = pc));
  for (const [i, v] of spec.bufferWrites) buffer[i] = v;
  const end = buffer.indexOf(0n);
  return buffer.slice(0, end < 0 ? spec.entries : end);
}

const hex016 = (x: bigint) => x.toString(16).padStart(16, '0');

/** printk %pB of a run-time address: the symbol holding addr - 1, and the offset of addr in it. */
function symbolize(spec: UnwindSpec, addr: bigint): string {
  const at = u64(addr - 1n);
  const s = spec.symbols.find((t) => t.start <= at && at < t.start + t.size);
  return s ? `${s.name}+0x${(addr - s.start).toString(16)}/0x${s.size.toString(16)}` : `0x${addr.toString(16)}`;
}

/** The host's log: the panic line, the header, one line per entry, the footer. */
export function expectedLines(spec: UnwindSpec): string[] {
  const hypOffset = u64(spec.elrPhys + spec.kimageVoffset - spec.kaslrOffset - spec.elrVirt);
  const kernel = (hypVa: bigint) => u64(hypVa + hypOffset);
  const line = (addr: bigint) => `[<${hex016(addr)}>] ${symbolize(spec, u64(addr + spec.kaslrOffset))}`;
  const vaMask = (1n << spec.vaBits) - 1n;
  const who = spec.mode === 'protected' ? 'Protected' : 'Non-protected';
  const [header, footer] =
    spec.format === 'upstream'
      ? ['nVHE call trace:', '---[ end nVHE call trace ]---']
      : [`${who} nVHE HYP call trace:`, `---- End of ${who} nVHE HYP call trace ----`];
  return [
    `nVHE hyp panic at: ${line(kernel(spec.elrVirt))}!`,
    header,
    ...hostEntries(spec).map((pc) => ` ${line(kernel(pc & vaMask))}`),
    footer,
  ];
}
