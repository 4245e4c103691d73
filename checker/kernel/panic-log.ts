// Reads the host's report of a hypervisor panic from a real console (SEMANTICS §9). After a hyp
// panic the host kernel logs, each line through kvm_err ("kvm [PID]: "):
//
//   nVHE hyp BUG at: FILE:LINE!                 (a BUG/WARN; or "nVHE hyp panic at: [<ADDR>] SYM+OFF/SIZE!")
//   nVHE call trace:
//    [<ADDR>] __kvm_nvhe_SYM+OFF/SIZE          (one per frame, innermost first; ADDR is the kernel
//    ...                                        image VA of the hyp return address, %pB symbolizes it)
//   ---[ end nVHE call trace ]---
//   Hyp Offset: 0x...
// and then panics: "Kernel panic - not syncing: HYP panic:".

/** One printed frame. */
export interface TraceEntry {
  /** The line as the kernel printed it, after the "kvm [PID]: " prefix. */
  readonly text: string;
  readonly addr: bigint;
  /** The symbol as printed (with its __kvm_nvhe_ prefix), its offset and size; null when not SYM+OFF/SIZE. */
  readonly symbol: string | null;
  readonly offset: bigint;
  readonly size: bigint;
}

export type PanicSite =
  | { readonly kind: 'bug'; readonly file: string; readonly line: number }
  | { readonly kind: 'panic' | 'bug-addr'; readonly addr: bigint; readonly symbol: string | null; readonly offset: bigint };

export interface PanicLog {
  /** The console lines of the report, verbatim (timestamps and all), from the panic line to the host's panic. */
  readonly block: readonly string[];
  readonly site: PanicSite | null;
  /** Whether "nVHE call trace:" and its end marker were printed. */
  readonly traceStart: boolean;
  readonly traceEnd: boolean;
  readonly entries: readonly TraceEntry[];
  /** Lines between the trace's start and end that are not in the entry format. */
  readonly malformed: readonly string[];
  readonly hypOffset: bigint | null;
  /** "Kernel panic - not syncing: HYP panic:" was printed. */
  readonly hostPanicked: boolean;
}

/** `[   12.345678] ` (PRINTK_TIME) and `kvm [PID]: ` (kvm_err). */
const TIME = /^\[\s*\d+\.\d+\]\s?/;
const KVM = /^kvm \[\d+\]: /;
const ENTRY = /^ \[<([0-9a-f]{16})>\] (?:(\S+)\+0x([0-9a-f]+)\/0x([0-9a-f]+)|(0x[0-9a-f]+))$/;
const SITE_FILE = /^nVHE hyp BUG at: (\S+):(\d+)!$/;
const SITE_ADDR = /^nVHE hyp (panic|BUG) at: \[<([0-9a-f]{16})>\] (?:(\S+)\+0x([0-9a-f]+)\/0x[0-9a-f]+|0x[0-9a-f]+)!$/;

/** The text of a kvm_err line (prefixes dropped), or null for any other line. */
function kvmText(line: string): string | null {
  const rest = line.replace(TIME, '');
  return KVM.test(rest) ? rest.replace(KVM, '') : null;
}

function parseSite(text: string): PanicSite | null {
  const f = SITE_FILE.exec(text);
  if (f) return { kind: 'bug', file: f[1], line: Number(f[2]) };
  const a = SITE_ADDR.exec(text);
  if (!a) return null;
  return { kind: a[1] === 'panic' ? 'panic' : 'bug-addr', addr: BigInt(`0x${a[2]}`), symbol: a[3] ?? null, offset: a[4] === undefined ? 0n : BigInt(`0x${a[4]}`) };
}

export function parseEntry(text: string): TraceEntry | null {
  const m = ENTRY.exec(text);
  if (!m) return null;
  const sym = m[2] ?? null;
  return { text, addr: BigInt(`0x${m[1]}`), symbol: sym, offset: sym ? BigInt(`0x${m[3]}`) : 0n, size: sym ? BigInt(`0x${m[4]}`) : 0n };
}

/** The first hyp panic report in a console; every field empty when there is none. */
export function parsePanicLog(console: string): PanicLog {
  const lines = console.split(/\r?\n/);
  const at = lines.findIndex((l) => /^nVHE hyp (BUG|panic|CFI failure) at: /.test(kvmText(l) ?? ''));
  const none: PanicLog = { block: [], site: null, traceStart: false, traceEnd: false, entries: [], malformed: [], hypOffset: null, hostPanicked: false };
  if (at < 0) return none;
  const entries: TraceEntry[] = [];
  const malformed: string[] = [];
  let traceStart = false;
  let traceEnd = false;
  let hypOffset: bigint | null = null;
  let end = lines.length;
  let hostPanicked = false;
  for (let i = at + 1; i < lines.length && !hostPanicked; i++) {
    const l = lines[i];
    if (l.replace(TIME, '').startsWith('Kernel panic - not syncing: HYP panic:')) {
      // The host's panic message goes on over a few lines with the same timestamp (PS, FAR, VCPU).
      const stamp = TIME.exec(l)?.[0] ?? '';
      end = i + 1;
      while (end < lines.length && stamp !== '' && lines[end].startsWith(stamp)) end++;
      hostPanicked = true;
      continue;
    }
    const text = kvmText(l);
    if (text === null) continue; // other kernel output interleaved
    if (text === 'nVHE call trace:') traceStart = true;
    else if (text === '---[ end nVHE call trace ]---') traceEnd = true;
    else if (text.startsWith('Hyp Offset: ')) hypOffset = BigInt(text.slice('Hyp Offset: '.length));
    else if (traceStart && !traceEnd) {
      const e = parseEntry(text);
      if (e) entries.push(e);
      else malformed.push(text);
    }
  }
  return {
    block: lines.slice(at, end),
    site: parseSite(kvmText(lines[at]) ?? ''),
    traceStart,
    traceEnd,
    entries,
    malformed,
    hypOffset,
    hostPanicked,
  };
}

/** The hypervisor's panic and call trace from a console, as printed. */
export function hypervisorTrace(console: string): string[] {
  const lines = console.split('\n').map((l) => l.replace(/^\[[^\]]*\]\s*/, '').trimEnd());
  const at = lines.findIndex((l) => /nVHE hyp (BUG|panic) at/.test(l));
  if (at < 0) return [];
  const end = lines.findIndex((l, i) => i > at && /Kernel panic - not syncing|end nVHE call trace/.test(l));
  return lines.slice(at, end < 0 ? at + 20 : end + 1);
}

/** The hypervisor's own words from a console, for a failure message. */
export function panicSummary(console: string): string {
  const lines = console.split('\n');
  const at = lines.findIndex((l) => /nVHE hyp (BUG|panic) at|Kernel panic/.test(l));
  return at < 0 ? '' : `: ${lines[at].replace(/^\[[^\]]*\]\s*/, '').trim()}`;
}
