// Finds or builds the kernel image: runs kernel/setup.sh, which reuses a cached build when nothing
// that went into it changed (a few seconds) and otherwise builds one (minutes; it says so).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { InputError } from '../vocabulary';

export interface KernelSetupOptions {
  /** A developer's own kernel tree instead of Debian's linux-source-6.12. */
  readonly kernelSrc?: string;
  /** A bug from kernel/bugs/ to build in. */
  readonly inject?: string | null;
  /** Progress of the build goes here (the CLI passes stderr; tests pass 'ignore'). */
  readonly progress?: 'inherit' | 'ignore';
}

export const SETUP_SCRIPT = fileURLToPath(new URL('../../kernel/setup.sh', import.meta.url));
export const KERNEL_BUGS_DIR = fileURLToPath(new URL('../../kernel/bugs/', import.meta.url));

/** The image directory (Image, vmlinux, initrd.cpio) for these options. */
export function kernelImage(opts: KernelSetupOptions = {}): string {
  if (opts.inject && !existsSync(`${KERNEL_BUGS_DIR}${opts.inject}.patch`)) throw new InputError(`--inject: bug "${opts.inject}" has no kernel patch in kernel/bugs/ (it cannot be built into the real kernel)`);
  const args = [SETUP_SCRIPT];
  if (opts.kernelSrc) args.push('--kernel-src', opts.kernelSrc);
  if (opts.inject) args.push('--inject', opts.inject);
  const r = spawnSync('bash', args, { stdio: ['ignore', 'pipe', opts.progress ?? 'inherit'], encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status === 2) throw new InputError(`kernel setup refused: see the message above (kernel/setup.sh exit 2)`);
  if (r.status !== 0) throw new Error(`kernel/setup.sh failed (exit ${r.status ?? r.signal})`);
  const dir = r.stdout.trim().split('\n').pop() ?? '';
  if (!existsSync(`${dir}/Image`)) throw new Error(`kernel/setup.sh printed no image directory (got "${dir}")`);
  return dir;
}
