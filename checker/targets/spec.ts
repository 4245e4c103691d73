// Which target a run or replay drives, as plain data (it crosses into the run's worker thread and
// into the commands a report prints), and how to make one.
import type { MachineConfig } from '../../types/config';
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

/** What a target can run, known without making one. */
export const targetSupports = (spec: TargetSpec, call: CallName): boolean => spec.name === 'sim' || KERNEL_CALLS.includes(call);

/** The flags that name the target in a printed command (nothing for the default). */
export function targetFlags(spec: TargetSpec | undefined): string[] {
  if (!spec || spec.name === 'sim') return [];
  return ['--target', 'kernel', ...(spec.kernelSrc ? ['--kernel-src', spec.kernelSrc] : [])];
}
