// A trace's machine: which page frames are memory (everything else is MMIO), the stage-2 granule and
// the kernel version modelled, and optionally a simulation-only pin limit. Validated here with the same
// one-line messages as a step; absent fields take DEFAULT_CONFIG's value, a trace without `kernel`
// models DEFAULT_KERNEL, and one without `pinLimit` the kernel's own.
import { hypLayout } from '../../hyp/setup';
import { DEFAULT_CONFIG, PA_PFNS, type MachineConfig, type MemoryRegion } from '../../types/config';
import { isKernelVersion, KERNEL_VERSIONS, KERNELS, type KernelVersion } from '../../types/kernel';
import { InputError } from '../vocabulary';
import { checkLimit, MAX_MEMORY_PAGES } from './limits';

const show = (v: unknown): string => (v === undefined ? 'nothing' : (JSON.stringify(v) ?? String(v)));

const bad = (field: string, expected: string, value: unknown): never => {
  throw new InputError(`field "${field}": expected ${expected}, got ${show(value)}`);
};

const CONFIG_FIELDS: readonly string[] = ['memory', 'pageSize', 'kernel', 'pinLimit'];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** One `[first pfn, pages]` pair: pages ≥ 1 and the whole region below the 40-bit PA limit. */
function parseRegion(v: unknown, field: string): MemoryRegion {
  if (!Array.isArray(v) || v.length !== 2) return bad(field, 'a pair [first pfn, number of pages]', v);
  const [first, pages] = v as unknown[];
  if (typeof first !== 'number' || !Number.isSafeInteger(first) || first < 0) return bad(`${field}[0]`, 'a non-negative integer (first pfn)', first);
  if (typeof pages !== 'number' || !Number.isSafeInteger(pages) || pages < 1) return bad(`${field}[1]`, 'a positive integer (number of pages)', pages);
  if (first + pages > PA_PFNS)
    return bad(field, `a region inside the 40-bit PA space (pfns below 0x${PA_PFNS.toString(16)})`, v);
  return [first, pages];
}

function parseMemory(v: unknown): readonly MemoryRegion[] {
  if (!Array.isArray(v) || v.length === 0) return bad('config.memory', 'a non-empty array of [first pfn, number of pages]', v);
  const regions = v.map((r, i) => parseRegion(r, `config.memory[${i}]`));
  for (let i = 1; i < regions.length; i++) {
    const [prevFirst, prevPages] = regions[i - 1];
    if (regions[i][0] < prevFirst + prevPages)
      bad(`config.memory[${i}]`, `a region starting at or after pfn 0x${(prevFirst + prevPages).toString(16)} (regions sorted, not overlapping)`, v[i]);
  }
  checkLimit(MAX_MEMORY_PAGES, regions.reduce((n, [, pages]) => n + pages, 0), 'field "config.memory"');
  return regions;
}

/**
 * hyp reserves its page-table pools at the top of the largest region, sized by the number and size of
 * all regions (hyp/setup.ts): a machine it cannot boot on is an input error here, not a crash later.
 */
function checkBootable(config: MachineConfig): void {
  try {
    hypLayout(config);
  } catch (e) {
    const why = (e as Error).message.replace(/^config: /, '');
    throw new InputError(`field "config.memory": expected memory hyp can boot on, but ${why}`);
  }
}

/**
 * A kernel version as the CLI's `--kernel` and a trace's `config.kernel` name it; anything else is an
 * InputError of one line naming `what`.
 */
export function parseKernelVersion(v: unknown, what = 'field "config.kernel"'): KernelVersion {
  if (isKernelVersion(v)) return v;
  throw new InputError(`${what}: expected ${KERNEL_VERSIONS.map((k) => `"${k}"`).join(' or ')}, got ${show(v)}`);
}

/** The largest `pinLimit` a config may set: the kernel's own u16 limit (the same in every version). */
const MAX_PIN_LIMIT = Math.min(...KERNEL_VERSIONS.map((k) => KERNELS[k].maxPins));

/** A simulation-only pin limit (types/config.ts): an integer from 1 to the kernel's 65,535. */
function parsePinLimit(v: unknown): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 && v <= MAX_PIN_LIMIT) return v;
  return bad('config.pinLimit', `an integer from 1 to ${MAX_PIN_LIMIT} (pins a page holds; simulation only)`, v);
}

/** Decodes the `config` field of a trace (`undefined` when absent). Throws InputError naming the field. */
export function parseConfig(raw: unknown): MachineConfig {
  if (raw === undefined) return DEFAULT_CONFIG;
  if (!isObject(raw)) return bad('config', 'an object { memory, pageSize, kernel, pinLimit }', raw);
  for (const k of Object.keys(raw)) if (!CONFIG_FIELDS.includes(k)) throw new InputError(`field "config.${k}": unknown field (allowed: ${CONFIG_FIELDS.join(', ')})`);
  const memory = raw.memory === undefined ? DEFAULT_CONFIG.memory : parseMemory(raw.memory);
  const pageSize = raw.pageSize === undefined ? DEFAULT_CONFIG.pageSize : raw.pageSize;
  if (pageSize !== 4096) bad('config.pageSize', '4096 (the only simulated stage-2 granule)', pageSize);
  const config: MachineConfig = {
    memory,
    pageSize: 4096,
    ...(raw.kernel === undefined ? {} : { kernel: parseKernelVersion(raw.kernel) }),
    ...(raw.pinLimit === undefined ? {} : { pinLimit: parsePinLimit(raw.pinLimit) }),
  };
  if (raw.memory !== undefined) checkBootable(config);
  return config;
}

/**
 * The config as one line of JSON, in the CONTRACT's layout: `{ "memory": [[262144, 4096]], "pageSize":
 * 4096 }`, with `"kernel": "6.12"` after them when the config names a version and `"pinLimit": 8` when
 * it sets one.
 */
export function encodeConfig(c: MachineConfig): string {
  const memory = c.memory.map(([first, pages]) => `[${first}, ${pages}]`).join(', ');
  const kernel = c.kernel === undefined ? '' : `, "kernel": "${c.kernel}"`;
  const pins = c.pinLimit === undefined ? '' : `, "pinLimit": ${c.pinLimit}`;
  return `{ "memory": [${memory}], "pageSize": ${c.pageSize}${kernel}${pins} }`;
}
