/**
 * What ktrace reads of the running kernel besides BPF: the classic kfree_skb record's format in
 * tracefs (the names of the drop reasons, where the reason sits), and a network namespace's inode
 * (the tracing programs filter packets by it).
 */
import { readFileSync, statSync } from 'node:fs';
import { PathlensError } from '../core/errors.js';
import { netnsPath } from '../io/placement.js';

/** The classic kfree_skb record's format (tracefs), when mounted. */
function kfreeFormat(): string {
  for (const root of ['/sys/kernel/tracing', '/sys/kernel/debug/tracing']) {
    const f = `${root}/events/skb/kfree_skb/format`;
    try {
      return readFileSync(f, 'utf8');
    } catch (e) {
      // tracefs is root's (mode 0700): unreadable is not "not mounted".
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') throw new PathlensError('ERR_BPF', `cannot read ${f} (the names and place of kfree_skb's drop reasons): tracefs needs CAP_DAC_READ_SEARCH, or root`);
    }
  }
  return '';
}

/** Names of kfree_skb's drop reasons, from the tracepoint's format. */
export function dropReasons(): Map<number, string> {
  const names = new Map<number, string>();
  for (const m of kfreeFormat().matchAll(/\{\s*(\d+),\s*"([A-Z0-9_]+)"\s*\}/g)) names.set(Number(m[1]), m[2]);
  return names;
}

/** Where `reason` sits in the classic kfree_skb record on this kernel (0: unknown). */
export function kfreeReasonOffset(): number {
  const m = /field:enum skb_drop_reason reason;\s*offset:(\d+);\s*size:4;/.exec(kfreeFormat());
  return m ? Number(m[1]) : 0;
}

/** The inode of a network namespace (the tracing hooks filter by it). */
export function netnsInode(netns: string | undefined): number {
  const path = netns ? netnsPath(netns) : '/proc/self/ns/net';
  try {
    return statSync(path).ino;
  } catch (e) {
    throw new PathlensError('ERR_USAGE', `--netns ${netns}: cannot open ${path} (${(e as NodeJS.ErrnoException).code})`);
  }
}
