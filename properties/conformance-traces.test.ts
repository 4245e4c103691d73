// The directed conformance traces in conformance/<version>/: for each kernel version, every errno
// path of every call (docs/semantics.md §4-§6), and 6.16's own pkvm_ownership_selftest. Each must
// name its version in config.kernel and replay clean: every expect holds and model and hyp agree.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { replayTrace } from '../checker/replay';
import { readTrace } from '../checker/trace/file';
import { KERNEL_VERSIONS } from '../types/kernel';

const DIR = 'conformance';

describe.each(KERNEL_VERSIONS)('conformance traces for %s', (version) => {
  const files = readdirSync(join(DIR, version)).filter((f) => f.endsWith('.json')).sort();

  test('cover every call of the vocabulary that has ownership semantics', () => {
    expect(files.length).toBeGreaterThanOrEqual(12);
  });

  test.each(files)('%s replays clean', (f) => {
    const file = join(DIR, version, f);
    const trace = readTrace(file);
    expect(trace.config.kernel).toBe(version);
    expect(trace.steps.every((s) => s.expect !== undefined || s.call === '__pkvm_init_vm')).toBe(true);
    const r = replayTrace(file, trace, null);
    expect(r.failure, r.lines.join('\n')).toBeNull();
    expect(r.ok).toBe(true);
  });
});
