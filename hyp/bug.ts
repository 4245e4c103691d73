// BUG_ON at EL2. In protected mode every BUG and every WARN that fires is fatal: the hypervisor
// panics and takes the host with it (handle_exit.c:439-486, docs/semantics.md §2). The simulation
// throws; the dispatcher (hyp-main.ts) rolls hyp's memory back to before the call and answers
// HYP_PANIC, so that a simulated sequence can go on from the state before the call.
export class HypPanic extends Error {
  constructor(what: string) {
    super(`hyp panic: ${what}`);
    this.name = 'HypPanic';
  }
}

export function BUG_ON(cond: boolean, what: string): void {
  if (cond) throw new HypPanic(what);
}
