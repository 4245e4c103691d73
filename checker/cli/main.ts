// pkvm-check's command-line entry point: dispatches to one module per command (CONTRACT.md).
import { InputError } from '../vocabulary';
import { USAGE, UsageError } from './usage';

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  run: async () => (await import('./run')).runCommand,
  replay: async () => (await import('./replay')).replayCommand,
  bugs: async () => (await import('./bugs')).bugsCommand,
  explore: async () => (await import('./explore')).exploreCommand,
  unwind: async () => (await import('./unwind')).unwindCommand,
  bench: async () => (await import('./bench')).benchCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return name === undefined ? 2 : 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`pkvm-check: unknown command "${name}"\n${USAGE}\n`);
    return 2;
  }
  try {
    return await (await load())(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`pkvm-check ${name}: ${e.message}\n${USAGE}\n`);
      return 2;
    }
    if (e instanceof InputError) {
      process.stderr.write(`pkvm-check ${name}: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

// Allow `tsx checker/cli/main.ts ...` as well as the bin launcher.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  process.exitCode = await main(process.argv.slice(2));
}
