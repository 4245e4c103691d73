// The suite's seed: fixed unless PKVM_CHECK_SEED is given (CI derives one per shard). It is written
// into reports/summary.json, never into a test name.
export const DEFAULT_TEST_SEED = 20261122;

function readSeed(): number {
  const raw = process.env.PKVM_CHECK_SEED;
  if (raw === undefined || raw === '') return DEFAULT_TEST_SEED;
  if (!/^[0-9]+$/.test(raw) || Number(raw) > 2 ** 31 - 1) throw new Error(`PKVM_CHECK_SEED: expected a whole number below 2^31, got "${raw}"`);
  return Number(raw);
}

export const SEED = readSeed();
