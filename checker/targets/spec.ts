// Which target a run or replay drives, as plain data (it crosses into the run's worker thread and
// into the commands a report prints), and how to make one.
import type { MachineConfig } from '../../types/config';
import { kernelOf, type KernelVersion } from '../../types/kernel';
import { InputError } from '../vocabulary';
import type { CallName } from '../../types/calls';
import type { HypBug } from '../bugs/ownership';
import type { Target } from '../target';
import { KERNEL_CALLS, KernelTarget } from './kernel';
import { SimTarget } from './sim';

export type TargetSpec =
  | { readonly name: 'sim' }
  /** The image directory comes from kernel/setup.sh; `kernelSrc` is a developer's own tree, if any. */
  | { readonly name: 'kernel'; readonly imageDir: string; readonly kernelSrc?: string; readonly stepwise?: boolean };

export const SIM: TargetSpec = { name: 'sim' };

export function makeTarget(spec: TargetSpec, config: MachineConfig, bugs: readonly HypBug[]): Target {
  return spec.name === 'sim' ? new SimTarget(config, bugs) : new KernelTarget(config, { imageDir: spec.imageDir, stepwise: spec.stepwise });
}

/** The kernel version the real-kernel target runs (Debian's linux-source-6.12). */
export const KERNEL_TARGET_VERSION: KernelVersion = '6.12';

/**
 * The machine a config describes, as the target runs it: on the kernel, the model follows the
 * kernel's version; a trace written for another version cannot run there.
 */
export function configFor(spec: TargetSpec, config: MachineConfig): MachineConfig {
  if (spec.name === 'sim') return config;
  if (config.kernel !== undefined && config.kernel !== KERNEL_TARGET_VERSION)
    throw new InputError(`config.kernel: the trace is written for Linux ${config.kernel}; the kernel target runs ${KERNEL_TARGET_VERSION}`);
  const machine: MachineConfig = { ...config, kernel: KERNEL_TARGET_VERSION };
  // pinLimit stands in for the u16 refcount on the simulation only: the real one holds what it holds.
  const limit = kernelOf(machine).maxPins;
  if (config.pinLimit !== undefined && config.pinLimit !== limit)
    throw new InputError(`config.pinLimit: ${config.pinLimit} is a simulation-only pin limit; the kernel target's pages hold ${limit} pins (u16 refcount), so it cannot run this config`);
  return machine;
}

/** What a target can run, known without making one. */
export const targetSupports = (spec: TargetSpec, call: CallName): boolean => spec.name === 'sim' || KERNEL_CALLS.includes(call);

/** The flags that name the target in a printed command (nothing for the default). */
export function targetFlags(spec: TargetSpec | undefined): string[] {
  if (!spec || spec.name === 'sim') return [];
  return ['--target', 'kernel', ...(spec.kernelSrc ? ['--kernel-src', spec.kernelSrc] : [])];
}
