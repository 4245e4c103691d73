// The reference model: executes one call of the vocabulary on a State and returns its result.
import type { Call } from '../types/calls';
import { kernelOf, NOT_SUPPORTED } from '../types/kernel';
import { host_access } from './access';
import * as guest from './guest';
import * as ownership from './ownership';
import type { State } from './state';

export * from './state';

/**
 * The model's result for a call; mutates `s` only when the call succeeds (and the fault log). A call
 * the version does not have is NOT_SUPPORTED and changes nothing.
 */
export function execModel(s: State, c: Call): number {
  if (kernelOf(s.config).absent.includes(c.call)) return NOT_SUPPORTED;
  switch (c.call) {
    case '__pkvm_host_share_hyp':
      return ownership.__pkvm_host_share_hyp(s, c.args);
    case '__pkvm_host_unshare_hyp':
      return ownership.__pkvm_host_unshare_hyp(s, c.args);
    case '__pkvm_host_donate_hyp':
      return ownership.__pkvm_host_donate_hyp(s, c.args);
    case '__pkvm_hyp_donate_host':
      return ownership.__pkvm_hyp_donate_host(s, c.args);
    case '__pkvm_host_share_ffa':
      return ownership.__pkvm_host_share_ffa(s, c.args);
    case '__pkvm_host_unshare_ffa':
      return ownership.__pkvm_host_unshare_ffa(s, c.args);
    case 'hyp_pin_shared_mem':
      return ownership.hyp_pin_shared_mem(s, c.args);
    case 'hyp_unpin_shared_mem':
      return ownership.hyp_unpin_shared_mem(s, c.args);
    case '__pkvm_host_share_guest':
      return guest.__pkvm_host_share_guest(s, c.args);
    case '__pkvm_host_unshare_guest':
      return guest.__pkvm_host_unshare_guest(s, c.args);
    case '__pkvm_host_relax_perms_guest':
      return guest.__pkvm_host_relax_perms_guest(s, c.args);
    case '__pkvm_host_wrprotect_guest':
      return guest.__pkvm_host_wrprotect_guest(s, c.args);
    case '__pkvm_host_test_clear_young_guest':
      return guest.__pkvm_host_test_clear_young_guest(s, c.args);
    case '__pkvm_host_mkyoung_guest':
      return guest.__pkvm_host_mkyoung_guest(s, c.args);
    case '__pkvm_vcpu_load':
      return guest.__pkvm_vcpu_load(s, c.args);
    case '__pkvm_vcpu_put':
      return guest.__pkvm_vcpu_put(s);
    case '__pkvm_init_vm':
      return ownership.__pkvm_init_vm(s, c.args);
    case '__pkvm_teardown_vm':
      return ownership.__pkvm_teardown_vm(s, c.args);
    case 'host_access':
      return host_access(s, c.args);
    case '__pkvm_host_stage2_snapshot':
    case 'hyp_panic':
      throw new Error(`execModel: ${c.call} is executed by its own area's model`);
  }
}
