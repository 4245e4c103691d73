// pkvm-check's command-line entry point: dispatches to one module per command (CONTRACT.md), and
// answers `--help`, `help CMD` and `--version`. Every error from outside is one line on stderr (with
// the command's synopsis after a usage error) and exit 2.
import { readFileSync } from 'node:fs';
import { InputError } from '../vocabulary';
import { printable } from './printable';
import { HELP, USAGE, UsageError } from './usage';

export type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  run: async () => (await import('./run')).runCommand,
  replay: async () => (await import('./replay')).replayCommand,
  bugs: async () => (await import('./bugs')).bugsCommand,
  properties: async () => (await import('./properties')).propertiesCommand,
  explore: async () => (await import('./explore')).exploreCommand,
  unwind: async () => (await import('./unwind')).unwindCommand,
};

/** The package's version, from package.json. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** `help` and `help CMD`: the overview, or one command's synopsis and help. */
function help(name: string | undefined): number {
  if (name === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const h = HELP[name];
  if (!h) {
    process.stderr.write(`pkvm-check help: unknown command "${printable(name)}" (commands: ${Object.keys(HELP).join(', ')})\n`);
    return 2;
  }
  process.stdout.write(`usage: ${h.synopsis}\n${h.help}\n`);
  return 0;
}

/**
 * Runs one command line. `extra` adds commands that live outside checker/ (the bin launcher adds
 * `bench`, which imports bench/, above checker/ in the dependency order).
 */
export async function main(argv: string[], extra: Record<string, () => Promise<Command>> = {}): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(`pkvm-check: name a command\n${USAGE}\n`);
    return 2;
  }
  if (name === '--help' || name === '-h') return help(undefined);
  if (name === 'help' && rest.length > 1) {
    process.stderr.write(`pkvm-check help: expected at most one command, got ${rest.length}\nusage: ${HELP.help.synopsis}\n`);
    return 2;
  }
  if (name === 'help') return help(rest[0]);
  if (name === '--version' || name === '-V') {
    process.stdout.write(`pkvm-check ${version()}\n`);
    return 0;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : Object.hasOwn(extra, name) ? extra[name] : undefined;
  if (!load) {
    process.stderr.write(`pkvm-check: unknown command "${printable(name)}" (commands: ${Object.keys(HELP).join(', ')}; see pkvm-check --help)\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) return help(name);
  try {
    return await (await load())(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`pkvm-check ${name}: ${printable(e.message)}\nusage: ${HELP[name]?.synopsis ?? USAGE}\n`);
      return 2;
    }
    if (e instanceof InputError) {
      process.stderr.write(`pkvm-check ${name}: ${printable(e.message)}\n`);
      return 2;
    }
    throw e;
  }
}
