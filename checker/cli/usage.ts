// Shared CLI plumbing: each command's help text, usage errors and strict flag parsing (one line,
// exit 2, nothing written). A usage error prints its line and then the failing command's synopsis.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InputError } from '../vocabulary';

export const EXIT_CODES = 'exit codes: 0 all hold · 1 a property failed · 2 bad usage, input or I/O error';

/** Per command: its synopsis (the usage line) and its help (flags with defaults, exit codes). */
export const HELP: Record<string, { readonly synopsis: string; readonly help: string }> = {
  run: {
    synopsis: 'pkvm-check run [--suite ownership|snapshot|unwinder|all] [--runs N] [--seed X] [--max-steps K] [--inject BUG|none] [--config FILE] [--out DIR] [--reports DIR] [--json] [--kernel 6.12|6.16] [--target sim|kernel] [--kernel-src DIR]',
    help: `Runs N random call sequences per suite, model and implementation in lockstep, checking every property.
  --suite S       ownership, snapshot, unwinder or all (default all)
  --runs N        sequences per suite, 1 to 10000000 (default 200)
  --seed X        fast-check seed, 0 to 2147483647 (default 42)
  --max-steps K   calls per sequence, 1 to 100000 (default 80; snapshot caps it at 30, unwinder at 4)
  --inject BUG    re-introduce a catalogued bug (pkvm-check bugs); it must be one the suite can reach; none: no bug
  --config FILE   one machine for every sequence: a JSON object like a trace's config, { "memory": [[first pfn,
                  pages], ...], "pageSize": 4096 }, optionally "kernel" and a simulation-only "pinLimit" (default:
                  on sim the ownership and snapshot suites rotate over the default machine, two regions, memory
                  above 4 GiB, an unaligned region and the default with VM slots, the fault log or (pinLimit 4)
                  a page's pins filled; on the kernel: the default)
  --out DIR       where a failure's minimized trace is written (default counterexamples)
  --reports DIR   where summary.json and summary.md are written (default reports)
  --json          print one JSON object instead of text
  --kernel V      the pKVM modelled: 6.12 or 6.16 (default 6.16; 6.12 on the kernel target)
  --target T      sim (default), or kernel: the real 6.12 hypervisor under QEMU (kernel/setup.sh builds or
                  reuses it; the ownership suite; BUG must have a patch in kernel/bugs/)
  --kernel-src D  with --target kernel: build this kernel tree instead of Debian's 6.12
On SIGINT or SIGTERM the summary so far is written and the exit is 130 or 143.
exit codes: 0 all hold · 1 a property failed (trace written, replay command printed) · 2 bad usage or I/O error`,
  },
  replay: {
    synopsis: 'pkvm-check replay FILE... [--inject BUG|none] [--json] [--kernel 6.12|6.16] [--target sim|kernel] [--kernel-src DIR]',
    help: `Re-executes each trace on model and implementation and prints it step by step.
  --inject BUG    replay with this catalogued bug instead of the trace's own "inject"; none: the correct code
  --json          print { ok, traces: [{ file, ok, steps, failure }] }
  --kernel V      replay every trace as that pKVM, 6.12 or 6.16 (default: each trace's config.kernel, else 6.16)
  --target T      sim (default), or kernel: replay on the real 6.12 hypervisor, one call per round trip,
                  printing where the trace's pages live there (a call the model says panics is sent)
  --kernel-src D  with --target kernel: build this kernel tree instead of Debian's 6.12
Limits (raise them through the environment): PKVM_CHECK_MAX_TRACE_BYTES (16 MiB), PKVM_CHECK_MAX_TRACE_STEPS
(100000), PKVM_CHECK_MAX_MEMORY_PAGES (1048576 pages, 4 GiB).
exit codes: 0 every trace clean · 1 a trace fails · 2 bad usage, an unreadable or invalid file (nothing run)`,
  },
  bugs: {
    synopsis: 'pkvm-check bugs [--json]',
    help: `Lists the known bugs --inject can re-introduce, one per line: id and description.
  --json          print { bugs: [{ id, description, suite }] }
exit codes: 0 · 2 bad usage`,
  },
  properties: {
    synopsis: 'pkvm-check properties [--json]',
    help: `Lists every property the checker checks, one per line: name, area (ownership, snapshot, unwinder,
kernel-target, harness) and what it states. A failure, a trace and a report name the property.
  --json          print [{ name, area, statement }]
exit codes: 0 · 2 bad usage`,
  },
  explore: {
    synopsis:
      'pkvm-check explore [--pages P] [--depth D] [--vms V] [--gfns G] [--max-pins K] [--calls LIST] [--geometry G] [--no-symmetry] [--model-only] [--inject BUG|none] [--config FILE] [--time-limit S] [--max-states N] [--out DIR] [--json] [--kernel 6.12|6.16] [--target sim|kernel] [--kernel-src DIR]',
    help: `Breadth-first exploration of every call sequence over a finite alphabet, model and implementation in lockstep.
  --pages P       hot pages, 1 to 64 (default 2)
  --depth D       explore states up to D calls from boot, 0 to 65535 (default: to the fixpoint)
  --vms V         VMs, 0 to 8 (default 1)
  --gfns G        guest frames per VM, 0 to 64 (default 2)
  --max-pins K    pins per page, 0 to 1000 (default 2)
  --calls LIST    comma-separated ownership calls to explore, or all (default: the ownership calls
                  without 6.16's attribute calls and vCPU load/put, the SPIN-comparable alphabet)
  --geometry G    where the pages lie: default (hot pages at the start of one 2 MiB block, VM slots
                  64 pages on), or a comma-separated list of: straddle (hot pages straddle a 2 MiB
                  boundary, half below; needs P >= 2), near (VM slots right after the hot pages, and
                  ranges over the hot pages and slot 0's first page), block (a 2 MiB block of 512
                  host pages shared with each VM at gfn 0 and unshared as a whole)
  --no-symmetry   no symmetry reduction
  --model-only    explore the model alone
  --inject BUG    an ownership bug (the explorer's alphabet reaches no other); none: no bug
  --config FILE   the machine: a JSON object like a trace's config (default 16 MiB at 1 GiB)
  --time-limit S  stop after S seconds, 1 to 1000000 (default none)
  --max-states N  stop after N states, 1 to 2000000000 (default none)
  --out DIR       where a violation's shortest trace is written (default counterexamples)
  --json          print one JSON object
  --kernel V      the pKVM modelled: 6.12 or 6.16 (default 6.16)
  --target T      sim (default), or kernel: the real 6.12 hypervisor, every transition replaying its path
                  from boot (it cannot roll back); its alphabet is the ownership calls 6.12 has, no VMs
  --kernel-src D  with --target kernel: build this kernel tree instead of Debian's 6.12
exit codes: 0 no violation (complete, or stopped at a limit: see "stopped") · 1 violation · 2 bad usage or I/O error`,
  },
  unwind: {
    synopsis:
      'pkvm-check unwind --scenario recursive_death|call_chain [--mode protected|nonprotected] [--page-size 4096|16384|65536] [--depth N] [--seed X] [--format upstream|v5] [--inject BUG|none] [--kernel 6.12|6.16] [--target sim|kernel] [--kernel-src DIR]',
    help: `Builds a hyp call chain on the simulated EL2 stack, panics, and prints what the host kernel would log.
  --scenario S    recursive_death or call_chain (required)
  --mode M        protected or nonprotected (default protected)
  --page-size B   4096, 16384 or 65536 (default 4096)
  --depth N       frames of call_chain (default 0; on the kernel 1 to 64, default 8)
  --seed X        KASLR offset and stack placement seed (default 0)
  --format F      upstream or v5 (default upstream)
  --inject BUG    an unwinder bug; none: no bug
  --kernel V      the pKVM simulated, 6.12 or 6.16 (default 6.16): the unwinder is the same in both, so the
                  log is too; a first line names the version (on the kernel target only 6.12)
  --target T      sim, or kernel: panic the real 6.12 hypervisor under QEMU (kvm-arm.mode=protected or nvhe),
                  check its console's call trace and print the simulated one beside it (default sim)
  --kernel-src D  with --target kernel: build this kernel tree instead of Debian's 6.12
exit codes: 0 · 1 the unwind broke a property · 2 bad usage`,
  },
  bench: {
    synopsis: 'pkvm-check bench [--json] [--kernel 6.12|6.16]',
    help: `Throughput figures (about 5 minutes): checked calls per second, time to find each bug, explorer speed.
  --json          print one JSON object
  --kernel V      the pKVM every machine models, 6.12 or 6.16 (default 6.16); named in the output (a bug
                  the version cannot reach, such as a 6.16-only call's, is found by no seed)
exit codes: 0 · 2 bad usage`,
  },
  help: {
    synopsis: 'pkvm-check help [COMMAND]',
    help: 'Prints the usage of every command, or the help of one.\nexit codes: 0 · 2 unknown command',
  },
};

/** Every command's synopsis, as `pkvm-check --help` prints it. */
export const USAGE = `usage:
${Object.values(HELP)
  .map((h) => `  ${h.synopsis}`)
  .join('\n')}
  pkvm-check --version
Every command takes --help. ${EXIT_CODES}.`;

export class UsageError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** A negative number given to a flag reads as another flag to parseArgs; say what it is. */
function negativeValue(argv: readonly string[]): UsageError | null {
  for (let i = 0; i + 1 < argv.length; i++)
    if (argv[i].startsWith('--') && /^-[0-9]/.test(argv[i + 1])) return new UsageError(`${argv[i]}: expected a whole number, got "${argv[i + 1]}" (negative numbers are not allowed)`);
  return null;
}

/** Parses flags strictly; unknown flags and missing values become a UsageError. */
export function parseFlags<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals });
  } catch (e) {
    throw negativeValue(argv) ?? new UsageError((e as Error).message.split('\n')[0]);
  }
}

/** A whole number flag in [min, max]; the message quotes what was given, never a rounded number. */
export function intFlag(name: string, value: string | undefined, dflt: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return dflt;
  if (/^-[0-9]/.test(value)) throw new UsageError(`--${name}: expected a whole number from ${min} to ${max}, got "${value}" (negative numbers are not allowed)`);
  if (!/^(0|[1-9][0-9]*|0x[0-9a-fA-F]+)$/.test(value)) throw new UsageError(`--${name}: expected a whole number, got "${value}"`);
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name}: expected a number from ${min} to ${max}, got "${value}"`);
  return n;
}
