// One QEMU machine running the patched kernel, and the synchronous channel to its agent.
//
// The lockstep runner is synchronous (it is the hot path of the simulated target), so the channel
// is too: two FIFOs that QEMU's `pipe` chardev reads and writes, opened non-blocking here and
// polled with short sleeps. The console goes to a file, read when the machine stops answering:
// a panicking hypervisor is an outcome to report, with its own call trace.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeHello, decodeResults, encodeBatch, MAX_OPS, OP, resultBytes, type Hello, type Op, type OpResult } from './abi';

export interface BootOptions {
  /** The directory kernel/setup.sh printed: Image, initrd.cpio. */
  readonly imageDir: string;
  /** The RAM window the agent may use: bytes, 2 MiB aligned. */
  readonly windowBase: number;
  readonly windowBytes: number;
  /** Guest RAM in MiB (the window lies at its top). */
  readonly ramMiB: number;
  /** kvm-arm.mode: protected (pKVM) or nvhe (the non-protected unwinder). */
  readonly mode?: 'protected' | 'nvhe';
  /** How long to wait for the agent, and for any one batch. */
  readonly timeoutMs?: number;
}

/** The machine stopped answering: it panicked, or QEMU exited or hung. */
export class MachineDown extends Error {
  constructor(
    message: string,
    readonly console: string,
  ) {
    super(message);
    this.name = 'MachineDown';
  }
}

/** How long a read polls before it sleeps between polls. */
const SPIN_MS = 2;
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const sleep = (ms: number): void => void Atomics.wait(sleeper, 0, 0, ms);

export class Machine {
  readonly hello: Hello;
  /** Wall-clock milliseconds from spawning QEMU to the agent's first answer. */
  readonly bootMs: number;
  private readonly dir: string;
  private readonly qemu: ChildProcess;
  private readonly toGuest: number;
  private readonly fromGuest: number;
  private readonly timeoutMs: number;
  private down = false;

  constructor(readonly opts: BootOptions) {
    this.timeoutMs = opts.timeoutMs ?? 20_000;
    this.dir = mkdtempSync(join(tmpdir(), 'pkvm-check-qemu-'));
    const fifo = join(this.dir, 'agent');
    const made = spawnSync('mkfifo', [`${fifo}.in`, `${fifo}.out`]);
    if (made.status !== 0) throw new Error(`mkfifo failed: ${made.stderr.toString().trim()}`);
    // O_RDWR keeps each FIFO open from our side even while QEMU has not opened it yet.
    this.toGuest = openSync(`${fifo}.in`, constants.O_RDWR | constants.O_NONBLOCK);
    this.fromGuest = openSync(`${fifo}.out`, constants.O_RDWR | constants.O_NONBLOCK);
    const started = performance.now();
    // A watchdog shell ends QEMU when this process goes away without closing it (a killed run).
    const watchdog = 'p=$1; shift; "$@" & q=$!; while kill -0 "$p" 2>/dev/null && kill -0 "$q" 2>/dev/null; do sleep 0.5; done; kill -9 "$q" 2>/dev/null; wait "$q"';
    this.qemu = spawn('bash', ['-c', watchdog, 'watchdog', String(process.pid), 'qemu-system-aarch64', ...qemuArgs(opts, fifo, this.consolePath)], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    this.qemu.stderr?.resume();
    const [hello] = this.receive(1);
    this.hello = decodeHello(hello);
    this.bootMs = performance.now() - started;
  }

  get consolePath(): string {
    return join(this.dir, 'console.log');
  }

  /** What the guest printed so far. */
  console(): string {
    return existsSync(this.consolePath) ? readFileSync(this.consolePath, 'latin1') : '';
  }

  /** Runs a batch of ops in the guest, in order; one result per op. */
  run(ops: readonly Op[]): OpResult[] {
    const out: OpResult[] = [];
    for (let i = 0; i < ops.length; i += MAX_OPS) {
      const chunk = ops.slice(i, i + MAX_OPS);
      this.send(encodeBatch(chunk));
      out.push(...this.receive(chunk.length));
    }
    return out;
  }

  /** Powers the guest off (or kills QEMU) and removes the FIFOs and the console. */
  close(keepConsole = false): string {
    const text = this.console();
    if (!this.down) {
      try {
        this.send(Buffer.alloc(4)); // a count of 0: the agent powers off
      } catch {
        // already gone
      }
    }
    this.waitExit(2_000);
    if (!exited(this.qemu.pid)) killGroup(this.qemu.pid);
    closeSync(this.toGuest);
    closeSync(this.fromGuest);
    if (!keepConsole) rmSync(this.dir, { recursive: true, force: true });
    this.down = true;
    return text;
  }

  private send(buf: Buffer): void {
    let off = 0;
    const deadline = performance.now() + this.timeoutMs;
    while (off < buf.length) {
      try {
        off += writeSync(this.toGuest, buf, off);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        this.waitOrDie(deadline);
      }
    }
  }

  private receive(count: number): OpResult[] {
    const head = this.readExactly(4);
    const n = head.readUInt32LE(0);
    if (n !== count) throw this.fail(`the agent answered ${n} results for ${count} ops`);
    return decodeResults(this.readExactly(resultBytes(n)), n);
  }

  private readExactly(len: number): Buffer {
    const buf = Buffer.alloc(len);
    let off = 0;
    const deadline = performance.now() + this.timeoutMs;
    let spinUntil = performance.now() + SPIN_MS;
    while (off < len) {
      try {
        off += readSync(this.fromGuest, buf, off, len - off, null);
        spinUntil = performance.now() + SPIN_MS;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        // An answer usually comes within a hundred microseconds: poll for a while before sleeping,
        // since a sleep rounds every round trip up to the timer's granularity.
        if (performance.now() > spinUntil) this.waitOrDie(deadline);
      }
    }
    return buf;
  }

  private waitOrDie(deadline: number): void {
    if (this.qemu.exitCode !== null || this.qemu.signalCode !== null || exited(this.qemu.pid)) throw this.fail('QEMU exited');
    if (performance.now() > deadline) throw this.fail(`no answer from the agent within ${this.timeoutMs} ms`);
    sleep(0.2);
  }

  private waitExit(ms: number): void {
    const deadline = performance.now() + ms;
    while (!exited(this.qemu.pid) && performance.now() < deadline) sleep(10);
  }

  private fail(why: string): MachineDown {
    this.down = true;
    this.waitExit(1_000);
    return new MachineDown(why, this.console());
  }
}

/** QEMU and its watchdog shell are a process group of their own. */
function killGroup(pid: number | undefined): void {
  try {
    if (pid !== undefined) process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** A child that has exited is a zombie until Node reaps it, which cannot happen while we block. */
function exited(pid: number | undefined): boolean {
  if (pid === undefined) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

function qemuArgs(o: BootOptions, fifo: string, consolePath: string): string[] {
  const mib = (n: number): string => `${Math.floor(n / 2 ** 20)}M`;
  const append = [
    'console=ttyAMA0',
    `kvm-arm.mode=${o.mode ?? 'protected'}`,
    'panic=-1',
    `pkvm_check_window=${mib(o.windowBytes)}@0x${o.windowBase.toString(16)}`,
  ];
  return [
    ...['-machine', 'virt,virtualization=on,gic-version=3', '-cpu', 'max', '-smp', '1', '-m', String(o.ramMiB)],
    ...['-display', 'none', '-monitor', 'none', '-no-reboot', '-nic', 'none'],
    ...['-serial', `file:${consolePath}`],
    ...['-kernel', join(o.imageDir, 'Image'), '-initrd', join(o.imageDir, 'initrd.cpio'), '-append', append.join(' ')],
    ...['-device', 'virtio-serial-device', '-chardev', `pipe,id=agent,path=${fifo}`, '-device', 'virtserialport,chardev=agent,name=pkvm-check'],
  ];
}

export const HELLO_OP: Op = { op: OP.HELLO, a: 0, b: 0 };
