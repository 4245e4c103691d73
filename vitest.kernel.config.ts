import { defineConfig } from 'vitest/config';

// `npm run test:kernel`: the real-kernel target (kernel/tests/). One worker: each test boots QEMU,
// which wants a core of its own, and the first may build the kernel (kernel/setup.sh).
export default defineConfig({
  test: {
    include: ['kernel/tests/**/*.test.ts'],
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 15 * 60_000,
    hookTimeout: 30 * 60_000,
    reporters: ['default', ['junit', { outputFile: 'reports/junit-kernel.xml', suiteName: 'pkvm-check-kernel' }]],
  },
});
