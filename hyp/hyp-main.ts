// hyp-main.c: the hypercall dispatch table, keyed by kernel name.
import type { ArgsOf, Call, CallName, LoadedVm } from '../types/calls';
import { HYP_PANIC, NOT_SUPPORTED, u32Arg } from '../types/kernel';
import { HypPanic } from './bug';
import type { Pkvm } from './pkvm';

type Handler<N extends CallName> = (hyp: Pkvm, args: ArgsOf<N>) => number;
type OwnershipCall = Exclude<CallName, '__pkvm_host_stage2_snapshot' | 'hyp_panic'>;

export const host_hcall: { readonly [N in OwnershipCall]: Handler<N> } = {
  __pkvm_host_share_hyp: (h, a) => h.__pkvm_host_share_hyp(a.pfn),
  __pkvm_host_unshare_hyp: (h, a) => h.__pkvm_host_unshare_hyp(a.pfn),
  __pkvm_host_donate_hyp: (h, a) => h.__pkvm_host_donate_hyp(a.pfn, a.nr_pages),
  __pkvm_hyp_donate_host: (h, a) => h.__pkvm_hyp_donate_host(a.pfn, a.nr_pages),
  __pkvm_host_share_ffa: (h, a) => h.__pkvm_host_share_ffa(a.pfn, a.nr_pages),
  __pkvm_host_unshare_ffa: (h, a) => h.__pkvm_host_unshare_ffa(a.pfn, a.nr_pages),
  hyp_pin_shared_mem: (h, a) => h.hyp_pin_shared_mem(a.pfn, a.nr_pages),
  hyp_unpin_shared_mem: (h, a) => h.hyp_unpin_shared_mem(a.pfn, a.nr_pages),
  __pkvm_host_share_guest: (h, a) => withLoadedVcpu(h, a.vm, () => h.__pkvm_host_share_guest(a.pfn, a.gfn, a.nr_pages, a.prot)),
  __pkvm_host_unshare_guest: (h, a) => h.__pkvm_host_unshare_guest(a.gfn, a.nr_pages, u32Arg(a.vm)),
  __pkvm_host_relax_perms_guest: (h, a) => withLoadedVcpu(h, a.vm, () => h.__pkvm_host_relax_perms_guest(a.gfn, a.prot)),
  __pkvm_host_wrprotect_guest: (h, a) => h.__pkvm_host_wrprotect_guest(a.gfn, a.nr_pages, u32Arg(a.vm)),
  __pkvm_host_test_clear_young_guest: (h, a) => h.__pkvm_host_test_clear_young_guest(a.gfn, a.nr_pages, a.mkold, u32Arg(a.vm)),
  __pkvm_host_mkyoung_guest: (h, a) => withLoadedVcpu(h, a.vm, () => h.__pkvm_host_mkyoung_guest(a.gfn)),
  // handle___pkvm_vcpu_load/put write no result register; the model's 0 stands for it. Handles and
  // the vCPU index are 32-bit registers (pkvm_handle_t, unsigned int).
  __pkvm_vcpu_load: (h, a) => (h.pkvm_load_hyp_vcpu(u32Arg(a.vm), u32Arg(a.vcpu)), 0),
  __pkvm_vcpu_put: (h) => (h.pkvm_put_hyp_vcpu(), 0),
  __pkvm_init_vm: (h, a) => h.__pkvm_init_vm(a.pfn, a.nr_pages),
  __pkvm_teardown_vm: (h, a) => h.__pkvm_teardown_vm(u32Arg(a.vm)),
  host_access: (h, a) => h.host_access(a.pfn, a.write),
};

/**
 * The host's side of a call on the loaded vCPU (types/calls.ts LoadedVm): with a VM named and no vCPU
 * loaded, the host loads that VM's vCPU 0 for the call and puts it after.
 */
function withLoadedVcpu(hyp: Pkvm, vm: LoadedVm, call: () => number): number {
  if (vm === null || hyp.loaded_vcpu_code() !== 0) return call();
  hyp.pkvm_load_hyp_vcpu(u32Arg(vm), 0);
  try {
    return call();
  } finally {
    hyp.pkvm_put_hyp_vcpu();
  }
}

/**
 * handle_host_hcall: a call the version's host_hcall[] lacks answers SMCCC_RET_NOT_SUPPORTED
 * (hyp-main.c:456-468). A call that hits a BUG_ON panics: its writes are undone and the result is
 * HYP_PANIC (hyp/bug.ts).
 */
export function handle_host_hcall(hyp: Pkvm, c: Call): number {
  if (c.call === '__pkvm_host_stage2_snapshot' || c.call === 'hyp_panic') throw new Error(`handle_host_hcall: ${c.call} has its own handler`);
  if (hyp.kernel.absent.includes(c.call)) return NOT_SUPPORTED;
  const mark = hyp.mem.mark();
  try {
    return (host_hcall[c.call] as Handler<typeof c.call>)(hyp, c.args as never);
  } catch (e) {
    if (!(e instanceof HypPanic)) throw e;
    hyp.mem.undo(mark);
    return HYP_PANIC;
  }
}
