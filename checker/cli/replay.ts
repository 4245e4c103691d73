// `pkvm-check replay FILE...`: validates every file first (exit 2 on any bad one, nothing run),
// then replays each on model and hyp.
import { replayTrace } from '../replay';
import { SUITE_NAMES } from '../suite-types';
import { readTrace } from '../trace/file';
import { parseInject } from './inject';
import { printable } from './printable';
import { parseFlags, UsageError } from './usage';
import { parseKernelFlag, parseTarget, requireSupported, TARGET_FLAGS } from './target';

export async function replayCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, { inject: { type: 'string' }, json: { type: 'boolean' }, ...TARGET_FLAGS }, true);
  if (positionals.length === 0) throw new UsageError('name at least one trace file');
  // A trace may mix calls of every suite, so every catalogued bug can be replayed.
  const bug = parseInject(values.inject, SUITE_NAMES, 'replay');
  const inject = bug === undefined ? undefined : (bug?.id ?? null);
  const kernel = parseKernelFlag(values);
  // --kernel replays every trace under that version, whatever its config says.
  const traces = positionals.map((file) => readTrace(file)).map((trace, i) => ({ file: positionals[i], trace: kernel ? { ...trace, config: { ...trace.config, kernel } } : trace }));
  // On the kernel each trace needs an image with its bug built in (cached after the first build).
  const targets = traces.map(({ file, trace }) => {
    if (values.target === 'kernel') requireSupported({ name: 'kernel', imageDir: '' }, trace.steps.map((s) => s.call), file);
    return parseTarget(values, inject === undefined ? trace.inject : inject);
  });
  const results = traces.map(({ file, trace }, i) => ({ file, ...replayTrace(file, trace, inject, targets[i]) }));
  if (values.json) {
    const traces = results.map(({ file, ok, steps, failure }) => ({ file, ok, steps, failure: failure && { step: failure.step, property: failure.property, message: failure.message } }));
    process.stdout.write(`${JSON.stringify({ ok: results.every((r) => r.ok), traces })}\n`);
  } else for (const r of results) process.stdout.write(`${r.lines.map(printable).join('\n')}\n`);
  return results.every((r) => r.ok) ? 0 : 1;
}
