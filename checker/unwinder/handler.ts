// The lockstep runner's handler for `hyp_panic` steps: the unwinder check runs hyp's unwinder and the
// model's spec on the same simulated stacks and reports the first violated property.
import type { UnwinderBug } from '../bugs/unwinder';
import type { CallHandler } from '../handlers';
import { checkUnwind } from './check';

export function unwindHandler(bugs: readonly UnwinderBug[]): CallHandler {
  return {
    run(_ls, call, step) {
      if (call.call !== 'hyp_panic') throw new Error(`unwindHandler: ${call.call}`);
      const out = checkUnwind(call.args, bugs);
      return { result: out.result, modelResult: out.result, failure: out.violation && { ...out.violation, step } };
    },
  };
}
