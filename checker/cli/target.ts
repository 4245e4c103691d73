// `--target sim|kernel` and `--kernel-src DIR`, the same in every command that runs calls. Choosing
// the kernel finds or builds its image here, before anything runs (kernel/setup.sh says what it does).
import { existsSync, statSync } from 'node:fs';
import type { CallName } from '../../types/calls';
import { kernelImage } from '../kernel/setup';
import { KERNEL_CALLS } from '../targets/kernel';
import { KERNEL_TARGET_VERSION, SIM, type TargetSpec } from '../targets/spec';
import { parseKernelVersion } from '../trace/config';
import type { KernelVersion } from '../../types/kernel';
import { UsageError } from './usage';

export const TARGET_FLAGS = { target: { type: 'string' }, 'kernel-src': { type: 'string' }, kernel: { type: 'string' } } as const;

export interface TargetRequest {
  readonly target?: string;
  readonly 'kernel-src'?: string;
  readonly kernel?: string;
}

/**
 * `--kernel VERSION`: the pKVM the model (and the simulation) follow; undefined when absent (the
 * trace's own, or the default). The real-kernel target runs 6.12 and nothing else.
 */
export function parseKernelFlag(values: TargetRequest): KernelVersion | undefined {
  if (values.kernel === undefined) return undefined;
  const v = parseKernelVersion(values.kernel, '--kernel');
  if (values.target === 'kernel' && v !== KERNEL_TARGET_VERSION) throw new UsageError(`--kernel ${v}: the kernel target runs Linux ${KERNEL_TARGET_VERSION}`);
  return v;
}

/** The target named by the flags; `inject` is built into the kernel's image when the target is the kernel. */
export function parseTarget(values: TargetRequest, inject: string | null | undefined): TargetSpec {
  const name = values.target ?? 'sim';
  if (name !== 'sim' && name !== 'kernel') throw new UsageError(`--target: expected sim or kernel, got "${name}"`);
  const src = values['kernel-src'];
  if (name === 'sim') {
    if (src !== undefined) throw new UsageError('--kernel-src: only with --target kernel');
    return SIM;
  }
  if (src !== undefined && (src === '' || !existsSync(src) || !statSync(src).isDirectory())) throw new UsageError(`--kernel-src: "${src}" is not a directory`);
  const imageDir = kernelImage({ kernelSrc: src, inject: inject ?? null });
  return { name: 'kernel', imageDir, ...(src === undefined ? {} : { kernelSrc: src }) };
}

/** Refuses calls the kernel target cannot run, naming them. */
export function requireSupported(target: TargetSpec, calls: Iterable<CallName>, what: string): void {
  if (target.name === 'sim') return;
  const missing = [...new Set(calls)].filter((c) => !KERNEL_CALLS.includes(c));
  if (missing.length > 0) throw new UsageError(`${what} uses ${missing.join(', ')}, which the kernel target does not run yet (it runs ${KERNEL_CALLS.join(', ')})`);
}
