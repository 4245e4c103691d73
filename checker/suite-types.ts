// What a suite run takes and reports; shared by the CLI, the reports and the vitest suite.
import type { PropertyName } from './properties';
import type { TargetSpec } from './targets/spec';
import type { KernelVersion } from '../types/kernel';
import type { MachineConfig } from '../types/config';
import type fc from 'fast-check';
import type { AbstractStep } from './generators';

export type SuiteName = 'ownership' | 'snapshot' | 'unwinder';
export const SUITE_NAMES: readonly SuiteName[] = ['ownership', 'snapshot', 'unwinder'];

export interface SuiteOptions {
  readonly runs: number;
  readonly seed: number;
  readonly maxSteps: number;
  /** Bug id from the catalog, or null for the correct implementation. */
  readonly inject: string | null;
  /** Where counterexample traces are written. */
  readonly outDir: string;
  /** What the run checks: the simulation (default) or the real kernel. */
  readonly target?: TargetSpec;
  /** The pKVM version modelled (types/kernel.ts); absent: the config's, or the default. */
  readonly kernel?: KernelVersion;
  readonly onProgress?: (p: Progress) => void;
  /** Steps that start every sequence, drawn for the machine (checker/capacity.ts); none when absent. */
  readonly prefix?: (config: MachineConfig) => fc.Arbitrary<AbstractStep[]>;
}

export interface Progress {
  readonly suite: SuiteName;
  readonly runsDone: number;
  readonly runsTotal: number;
  readonly calls: number;
}

export interface Failure {
  readonly property: PropertyName;
  /** 1-based step of the trace at which the property failed (0: before any step). */
  readonly step: number;
  readonly message: string;
}

/** How often each call returned each result: coverage[call][result name] = count. */
export type Coverage = Record<string, Record<string, number>>;

export interface SuiteResult {
  readonly name: SuiteName;
  readonly runs: number;
  readonly calls: number;
  readonly ok: boolean;
  /** Path of the trace written for the failure, if any. */
  readonly counterexample: string | null;
  readonly failure: Failure | null;
  readonly seed: number;
  readonly coverage: Coverage;
  readonly durationMs: number;
  /** Length of the shrunk counterexample, when there is one. */
  readonly counterexampleSteps?: number;
  /** Why the counterexample was not written (flaky in a fresh process, or the disk refused it)... */
  readonly counterexampleProblem?: string;
  /** ...and then the trace's text, so that it is printed instead. */
  readonly counterexampleText?: string;
  /** True for the suite a signal stopped: its runs and calls are those done before it. */
  readonly incomplete?: boolean;
}
