// Known defects of __pkvm_host_stage2_snapshot, each re-introduced by replacing one small method of
// a fresh hyp instance's snapshot object. The first two are the posted v4 defects (SEMANTICS §5).
import { EPERM } from '../../types/errno';
import type { Pkvm } from '../../hyp/pkvm';
import { PAGE_SIZE, SNAP_MC_HEAD, SNAP_MC_NR_PAGES, SNAP_USED_PAGES_INDX, snapshotOf } from '../../hyp/snapshot';
import { ptdumpOf } from '../../hyp/ptdump';
import { kvm_pte_to_pfn, kvm_pte_valid } from '../../hyp/pgtable';
import type { HypBug } from './ownership';

export const SNAPSHOT_BUGS: readonly HypBug[] = [
  {
    id: 'snapshot-used-pages-off-by-one',
    description: 'the used-pages capacity check uses > instead of >=: one entry is written just past the donated array',
    suite: 'snapshot',
    inject: (h: Pkvm) => {
      const s = snapshotOf(h);
      s.snapshot_record_used = (snap, pa) => {
        if (snap.used_pages_indx * 8 > snap.num_used_pages * PAGE_SIZE) return;
        const byte = snap.used_pages_indx * 8;
        h.mem.write64('hyp', Math.floor(snap.used / PAGE_SIZE) + Math.floor(byte / PAGE_SIZE), byte % PAGE_SIZE, BigInt(pa));
        snap.used_pages_indx++;
      };
    },
  },
  {
    id: 'snapshot-setup-rollback',
    description: 'the setup error path walks the memcache back from the list head and also returns the page whose donation failed',
    suite: 'snapshot',
    inject: (h: Pkvm) => {
      const s = snapshotOf(h);
      s.snapshot_return_memcache = (setup) => {
        const pages = setup.mc_failed === null ? setup.mc : [...setup.mc, Math.floor(setup.mc_failed / PAGE_SIZE)];
        for (const pfn of pages) s.snapshot_return(pfn, 1);
      };
    },
  },
  {
    id: 'snapshot-teardown-forgets-used-array',
    description: 'the teardown gives back the memcache, the PGD and the descriptor but not the used-pages array',
    suite: 'snapshot',
    inject: (h: Pkvm) => {
      const s = snapshotOf(h);
      const original = s.snapshot_teardown.bind(s);
      s.snapshot_teardown = (setup) => original({ ...setup, used: null });
    },
  },
  {
    id: 'snapshot-shares-table-page',
    description: 'the copy points its last-level entries at the host\'s own table pages instead of copying them',
    suite: 'snapshot',
    inject: (h: Pkvm) => {
      const s = snapshotOf(h);
      const original = s.snapshot_alloc_table.bind(s);
      s.snapshot_alloc_table = (snap, src) => {
        original(snap, src); // the page is popped and recorded, but the copy keeps pointing at the host's table
        return src;
      };
    },
  },
  {
    id: 'snapshot-memcache-partial-donation',
    description: 'only the memcache pages the copy needs are donated: the rest of the host-claimed list (cyclic, foreign) is never taken nor checked',
    suite: 'snapshot',
    inject: (h: Pkvm) => {
      const s = snapshotOf(h);
      s.snapshot_donate_memcache = (snap, setup) => {
        const needed = Math.min(snap.mc_nr_pages, s.host_stage2_count_tables());
        let pa = snap.mc_head;
        for (let k = 0; k < needed; k++) {
          const ret = pa % PAGE_SIZE === 0 ? s.snapshot_donate(Math.floor(pa / PAGE_SIZE), 1) : -EPERM;
          if (ret) {
            setup.mc_failed = pa;
            return ret;
          }
          setup.mc.push(Math.floor(pa / PAGE_SIZE));
          if (k + 1 < needed) pa = s.read_field(Math.floor(pa / PAGE_SIZE), 0);
        }
        return 0;
      };
    },
  },
  {
    id: 'ptdump-merges-states',
    description: 'ptdump merges an entry into the current run when type, permissions and memory attributes match, ignoring the page state: an OWNED page next to a SHARED_OWNED one prints as one run',
    suite: 'snapshot',
    inject: (h: Pkvm) => {
      const d = ptdumpOf(h);
      d.continues_run = (run, e, desc) => {
        const out = kvm_pte_valid(e.lo) ? kvm_pte_to_pfn(e.lo, e.hi) : -1;
        const attrs = (s: string) => s.split('  ').slice(0, 3).join('  ');
        return run.desc !== '' && attrs(desc) === attrs(run.desc) && e.addr === run.end && (out < 0 || out === run.nextOut);
      };
    },
  },
  {
    id: 'snapshot-reads-link-before-donation',
    description: "each memcache page's link is read before hyp takes the page: the host can change it between the read and the donation (the results are the same when it does not)",
    suite: 'snapshot',
    inject: (h: Pkvm) => {
      const s = snapshotOf(h);
      s.snapshot_donate_memcache = (snap, setup) => {
        let pa = snap.mc_head;
        for (let k = 0; k < snap.mc_nr_pages; k++) {
          const aligned = pa % PAGE_SIZE === 0;
          const next = aligned && k + 1 < snap.mc_nr_pages ? s.read_field(Math.floor(pa / PAGE_SIZE), 0) : 0;
          const ret = aligned ? s.snapshot_donate(Math.floor(pa / PAGE_SIZE), 1) : -EPERM;
          if (ret) {
            setup.mc_failed = pa;
            return ret;
          }
          setup.mc.push(Math.floor(pa / PAGE_SIZE));
          pa = next;
        }
        return 0;
      };
    },
  },
  {
    id: 'snapshot-writeback-count-off-by-one',
    description: 'the memcache count written back into the descriptor is one too many: the host believes the last page consumed is still in its memcache',
    suite: 'snapshot',
    inject: (h: Pkvm) => {
      const s = snapshotOf(h);
      s.snapshot_write_desc = (snap) => {
        h.mem.write64('hyp', snap.desc, SNAP_MC_HEAD, BigInt(snap.mc_head));
        h.mem.write64('hyp', snap.desc, SNAP_MC_NR_PAGES, BigInt(snap.mc_nr_pages + 1));
        h.mem.write64('hyp', snap.desc, SNAP_USED_PAGES_INDX, BigInt(snap.used_pages_indx));
      };
    },
  },
];
