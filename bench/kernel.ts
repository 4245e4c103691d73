// `npm run bench:kernel`: the real-kernel target's figures (builds the kernel first if needed).
// Prints a table, writes reports/bench-kernel.json; `--json` prints the JSON instead.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { kernelImage } from '../checker/kernel/setup';
import { Machine } from '../checker/kernel/qemu';
import { OP, type Op } from '../checker/kernel/abi';
import { Lockstep } from '../checker/lockstep';
import { KernelTarget } from '../checker/targets/kernel';
import { configFor } from '../checker/targets/spec';
import { SUITES } from '../checker/suites';
import { resolve, sequenceArb } from '../checker/generators';
import { runSequence } from '../checker/sequence';
import { DEFAULT_CONFIG } from '../types/config';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function timeIt<T>(f: () => T): [T, number] {
  const t = performance.now();
  const r = f();
  return [r, performance.now() - t];
}

const say = (line: string): void => void process.stderr.write(`${line}\n`);

// Building (or finding) the image; the build time is what setup.sh recorded when it last built it
// (a cold build, or an incremental one after a patch changed).
const [imageDir, setupMs] = timeIt(() => kernelImage({ progress: 'inherit' }));
const [, cachedStartMs] = timeIt(() => kernelImage({ progress: 'ignore' }));
const buildFile = join(imageDir, 'build-seconds');
const lastBuildSeconds = existsSync(buildFile) ? Number(readFileSync(buildFile, 'utf8')) : null;
say(`image ${imageDir}: last build ${lastBuildSeconds ?? '?'} s, cached start ${(cachedStartMs / 1000).toFixed(2)} s`);

// Boot to the agent's first answer, and the raw channel.
const window = { imageDir, windowBase: 0x50000000, windowBytes: 16 << 20, ramMiB: 272 };
const boots: number[] = [];
for (let i = 0; i < 5; i++) {
  const m = new Machine(window);
  boots.push(m.bootMs);
  m.close();
}
say(`boot to ready: median ${median(boots).toFixed(0)} ms over ${boots.length} boots`);
const m = new Machine(window);
const w = m.hello.windowPfn;
const pairs: Op[] = Array.from({ length: 20_000 }, (_, i) => ({ op: i % 2 ? OP.UNSHARE_HYP : OP.SHARE_HYP, a: w + 100, b: 1 }));
m.run(pairs.slice(0, 2000));
const [, batchMs] = timeIt(() => m.run(pairs));
const [, rtMs] = timeIt(() => {
  for (let i = 0; i < 2000; i++) m.run([pairs[i], { op: OP.PROBE, a: w + 100, b: 0 }]);
});
m.close();
const hypercallsPerSecond = pairs.length / (batchMs / 1000);
const roundTripsPerSecond = 2000 / (rtMs / 1000);
say(`in-guest share/unshare: ${hypercallsPerSecond.toFixed(0)}/s; round trips (call + probe): ${roundTripsPerSecond.toFixed(0)}/s`);

// Checked calls: the ownership suite's sequences (generated first, so generation is not timed).
function checkedRate(runs: number): { calls: number; perSecond: number; sent: number; notSent: number } {
  const config = configFor({ name: 'kernel', imageDir }, DEFAULT_CONFIG);
  const target = new KernelTarget(config, { imageDir });
  const ls = new Lockstep(config, target);
  const seqs = fc.sample(sequenceArb(80, SUITES.ownership!.step((c) => target.supports(c))), { seed: 42, numRuns: runs });
  target.relocation(); // boot outside the timing
  const [, ms] = timeIt(() => {
    for (const seq of seqs) {
      const out = runSequence(ls, seq, resolve);
      if (out.failure) throw new Error(`the correct kernel failed a sequence: ${JSON.stringify(out.failure)}\n${out.steps.map((s) => JSON.stringify(s)).join('\n')}`);
    }
    ls.reset();
  });
  target.close();
  return { calls: ls.calls, perSecond: ls.calls / (ms / 1000), sent: target.stats.sent, notSent: target.stats.notSent };
}
const pipelined = checkedRate(1000);
say(`checked calls, pipelined: ${pipelined.perSecond.toFixed(0)}/s (${pipelined.calls} calls, ${pipelined.sent} sent to the kernel, ${pipelined.notSent} held back)`);

const result = {
  image: imageDir,
  lastBuildSeconds,
  setupMs: Math.round(setupMs),
  cachedStartMs: Math.round(cachedStartMs),
  bootToReadyMs: Math.round(median(boots)),
  hypercallsPerSecond: Math.round(hypercallsPerSecond),
  roundTripsPerSecond: Math.round(roundTripsPerSecond),
  checkedCallsPerSecond: Math.round(pipelined.perSecond),
  checkedCalls: pipelined.calls,
  sentToKernel: pipelined.sent,
  heldBack: pipelined.notSent,
};
const out = `${JSON.stringify(result, null, 2)}\n`;
mkdirSync('reports', { recursive: true });
writeFileSync('reports/bench-kernel.json', out);
if (process.argv.includes('--json')) process.stdout.write(out);
