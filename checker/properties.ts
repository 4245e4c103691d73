// Every property pkvm-check checks, in one place: its name (what a failure, a trace file and a report
// say), the area it belongs to and a one-line statement. `pkvm-check properties` lists this table and
// the reports print the statement next to the name. A failure names its property through `P`
// (`P.resultsAgree` is the type 'results-agree'), so a misspelt property is a type error, and a name
// is written nowhere else. Saved traces keep their names as data (checker/trace/file.ts); a property
// renamed here must keep its old name readable there.

export type PropertyArea = 'ownership' | 'snapshot' | 'unwinder' | 'kernel-target' | 'harness';

/** The areas in the order `pkvm-check properties` lists them. */
export const PROPERTY_AREAS: readonly PropertyArea[] = ['ownership', 'snapshot', 'unwinder', 'kernel-target', 'harness'];

export interface PropertyInfo {
  readonly area: PropertyArea;
  /** One line, no full stop: what holds when the property holds. */
  readonly statement: string;
}

export const PROPERTIES = {
  // Ownership: model and implementation in lockstep, per call and at the end of each sequence.
  'results-agree': { area: 'ownership', statement: 'the model and the implementation return the same result for every call' },
  'state-agrees': {
    area: 'ownership',
    statement: "the abstraction of hyp's tables (owner, use, sharing, borrowers, pins, VMs and their guest mappings) equals the model",
  },
  'failed-call-changes-nothing': { area: 'ownership', statement: "a call that fails leaves hyp's memory and metadata bit-identical" },
  'hyp-writes-only-own-pages': { area: 'ownership', statement: 'hyp writes only pages it owns, checked at the moment of every write' },
  'hyp-reads-host-data-only-from-own-pages': {
    area: 'snapshot',
    statement: 'hyp reads host-provided data (descriptor fields, memcache links) only from pages it owns at that moment',
  },
  'host-reaches-only-its-pages': {
    area: 'ownership',
    statement: "the host stage-2 lets the host reach a page exactly when the host owns or lends it, and none of hyp's carve-out",
  },
  'hyp-maps-only-its-pages': { area: 'ownership', statement: "hyp's stage-1 maps exactly the pages hyp owns or borrows, its carve-out OWNED" },
  'host-leaf-attributes': {
    area: 'ownership',
    statement: 'a valid host stage-2 leaf maps memory as normal RWX inner-shareable and MMIO as device RW execute-never, never both',
  },
  'sharing-bookkeeping': { area: 'ownership', statement: "the host stage-2's software bits say SHARED_OWNED exactly when the host shares the page" },
  'fault-log-agrees': { area: 'ownership', statement: "the host fault log (entries, warned, dropped, aborts) equals the model's" },
  'fault-log-bounded': { area: 'ownership', statement: 'the fault log holds distinct entries within its size, and warns exactly when it drops one' },
  'table-pages-hyp-owned': { area: 'ownership', statement: 'every page-table page is a page hyp uses, and is used by one table only' },
  'table-pages-zeroed': { area: 'ownership', statement: 'every page hyp takes as a page-table page (a PGD, a page from a pool) is zero when it takes it' },
  'table-refcount': { area: 'ownership', statement: 'every page-table page is refcounted 1 + its non-zero entries' },
  'pages-conserved': { area: 'ownership', statement: "every page allocated from hyp's pools is used by a table (no leak)" },

  // Snapshot: __pkvm_host_stage2_snapshot, at every internal step and after the call.
  'snapshot-takes-what-the-model-takes': {
    area: 'snapshot',
    statement: 'the snapshot donates to hyp no more pages (descriptor, PGD, memcache, used-pages array) than the model takes',
  },
  'no-host-access-to-donated-snapshot-pages': { area: 'snapshot', statement: 'at every internal step of the snapshot, every page hyp has taken faults for the host' },
  'snapshot-writes-only-its-output': {
    area: 'snapshot',
    statement: "a successful snapshot writes only hyp's pools, the copy's tables, the descriptor's written-back fields and the used-pages entries",
  },
  'snapshot-ptdump-equals-host': { area: 'snapshot', statement: "the copy's ptdump equals the host stage-2's at the time of the call" },
  'snapshot-copy-equals-host': { area: 'snapshot', statement: "the copy's leaves equal the host stage-2's at the time of the call" },
  'snapshot-copy-tables-are-memcache-pages': {
    area: 'snapshot',
    statement: "every table page of the copy is a distinct memcache page the model consumed, none of the host's own",
  },
  'ptdump-matches-walker': {
    area: 'snapshot',
    statement: "hyp's ptdump of the host stage-2 covers every non-zero leaf of the checker's own walk once, merging exactly the contiguous, equal ones",
  },
  'snapshot-memcache-written-back': {
    area: 'snapshot',
    statement: "the memcache head and page count hyp writes back into the descriptor are the model's leftover memcache",
  },
  'snapshot-used-pages-exact': { area: 'snapshot', statement: 'used_pages_indx and the used-pages array record exactly the consumed memcache pages, in order' },

  // Unwinder: one hyp_panic, unwound by EL2 (protected) or the host (nonprotected) and printed.
  'unwind-bounded': {
    area: 'unwinder',
    statement: 'hyp hands the panic to the host, and the unwind stops within the frame records the two stacks can hold',
  },
  'unwind-reads-inside-stacks': { area: 'unwinder', statement: 'the unwinder reads only the hyp stack and the overflow stack (or the host its aliases of them)' },
  'stacktrace-buffer-terminated': { area: 'unwinder', statement: 'EL2 writes only pkvm_stacktrace[0..N-1] and leaves at most N - 1 entries and a 0 there' },
  'host-reader-bounded': { area: 'unwinder', statement: 'in protected mode the host reads only the pkvm_stacktrace buffer, at most N entries' },
  'host-output-equals-model': { area: 'unwinder', statement: "the host's printed call trace equals the model's, line by line" },
  'overflow-trace-shape': {
    area: 'unwinder',
    statement: 'an uncorrupted overflow prints hyp_panic, hyp_panic_bad_stack, the recursion, then the chain down to __host_exit',
  },
  'call-chain-trace-shape': { area: 'unwinder', statement: 'an uncorrupted panic prints hyp_panic, then the call chain built, innermost first, down to __host_exit' },
  'modes-agree': { area: 'unwinder', statement: 'on uncorrupted stacks, protected and nonprotected modes print the same trace' },

  // The real kernel under QEMU (--target kernel).
  'kernel-alive': {
    area: 'kernel-target',
    statement: 'the kernel under QEMU stays up, and after a panic the model predicted a fresh machine answers the earlier calls as the first did',
  },

  // The real hypervisor's stack dump (unwind --target kernel): its console report after a test panic.
  'panic-reported': {
    area: 'kernel-target',
    statement: 'the test hypercall panics the hypervisor and the host logs the whole report: site, call trace, end marker, Hyp Offset',
  },
  'panic-site': { area: 'kernel-target', statement: "the report's panic site is the store into the guard page, or the WARN_ON of pkvm_check_stack.c" },
  'line-format': { area: 'kernel-target', statement: "every entry of the real call trace is in the kernel's format, [<ADDR>] __kvm_nvhe_SYM+OFF/SIZE" },
  'symbols-match-vmlinux': { area: 'kernel-target', statement: 'every printed address is its printed symbol + offset in vmlinux, with the size kallsyms computes' },
  'entries-bounded': {
    area: 'kernel-target',
    statement: 'the real call trace has at most N - 1 entries in protected mode, one per frame record the stacks hold (and the pc) otherwise',
  },
  'starts-at-hyp-panic': { area: 'kernel-target', statement: 'the real call trace starts at hyp_panic' },
  'overflow-path': { area: 'kernel-target', statement: 'hyp_panic_bad_stack is the second entry exactly when the panic overflowed the hyp stack' },
  recursion: { area: 'kernel-target', statement: 'the recursive function is one run of entries from one call site, as deep as the scenario recursed' },
  'chain-to-host-exit': {
    area: 'kernel-target',
    statement: "the real call trace follows the built chain down to __host_exit (or is the protected buffer's first N - 1 entries)",
  },

  // The harness: traces, sequences and the run itself.
  expect: { area: 'harness', statement: "every step of a trace returns the result its 'expect' gives" },
  'no-crash': { area: 'harness', statement: 'the implementation never throws: an exception during a step is a failure at that step' },
  'harness-limit': { area: 'harness', statement: "the simulation's table pools suffice for the sequence (running out is a limit of the harness)" },
  flaky: { area: 'harness', statement: 'the shrunk counterexample fails again when re-run' },
} as const satisfies Readonly<Record<string, PropertyInfo>>;

/** A property's name, as failures, traces and reports write it. */
export type PropertyName = keyof typeof PROPERTIES;

/** Every property's name, in the registry's order. */
export const PROPERTY_NAMES = Object.keys(PROPERTIES) as readonly PropertyName[];

/** "results-agree" → "resultsAgree", in the type system. */
type CamelCase<S extends string> = S extends `${infer Head}-${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : S;

/** "results-agree" → "resultsAgree". */
export const camelCase = (name: string): string => name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Every property by its camel-cased name: `P.resultsAgree` is 'results-agree'. */
export const P = Object.freeze(Object.fromEntries(PROPERTY_NAMES.map((n) => [camelCase(n), n]))) as { readonly [N in PropertyName as CamelCase<N>]: N };

export function isPropertyName(s: string): s is PropertyName {
  return Object.hasOwn(PROPERTIES, s);
}

/** A property's statement; undefined for a name the registry does not hold (an old or hand-written trace's). */
export function propertyStatement(name: string): string | undefined {
  return isPropertyName(name) ? PROPERTIES[name].statement : undefined;
}

/** Every property with its area and statement, grouped by area in PROPERTY_AREAS' order. */
export function propertyList(): { readonly name: PropertyName; readonly area: PropertyArea; readonly statement: string }[] {
  const all = PROPERTY_NAMES.map((name) => ({ name, area: PROPERTIES[name].area as PropertyArea, statement: PROPERTIES[name].statement }));
  return PROPERTY_AREAS.flatMap((area) => all.filter((p) => p.area === area));
}
