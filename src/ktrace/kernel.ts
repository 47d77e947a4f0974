/**
 * What ktrace reads of the running kernel besides BPF: the classic kfree_skb record's format in
 * tracefs (the names of the drop reasons, where the reason sits), and a network namespace's inode
 * (the tracing programs filter packets by it).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { PathlensError } from '../core/errors.js';
import { netnsPath } from '../io/placement.js';

/** A classic tracepoint's record format (tracefs), when mounted and the tracepoint exists ('' if not). */
function tracepointFormat(event: string): string {
  for (const root of ['/sys/kernel/tracing', '/sys/kernel/debug/tracing']) {
    const f = `${root}/events/${event}/format`;
    try {
      return readFileSync(f, 'utf8');
    } catch (e) {
      // tracefs is root's (mode 0700): unreadable is not "not mounted".
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') throw new PathlensError('ERR_BPF', `cannot read ${f} (a tracepoint's record format): tracefs needs CAP_DAC_READ_SEARCH, or root`);
    }
  }
  return '';
}

const kfreeFormat = () => tracepointFormat('skb/kfree_skb');

/**
 * Where a classic tracepoint's record holds an sk_buff's address (`field`, 8 bytes), or why it
 * cannot be used: no such tracepoint here, or no such field.
 */
export function tracepointField(event: string, field: string): number | string {
  const fmt = tracepointFormat(event);
  if (!fmt) return `no tracepoint ${event} here (tracefs events/${event})`;
  const m = new RegExp(`field:[^;]*[\\s*]${field};\\s*offset:(\\d+);\\s*size:(\\d+);`).exec(fmt);
  if (!m) return `tracepoint ${event}'s record has no field ${field}`;
  if (m[2] !== '8') return `tracepoint ${event}'s field ${field} is ${m[2]} bytes, not an address`;
  return Number(m[1]);
}

let btfFiles: Buffer[] | null = null;

/**
 * Whether the kernel's BTF (vmlinux, and the modules loaded now) names `name`: a function or a
 * tracepoint (btf_trace_NAME) that a program can be loaded for.
 */
export function btfHas(name: string): boolean {
  if (!btfFiles) {
    btfFiles = [];
    try {
      for (const f of readdirSync('/sys/kernel/btf')) btfFiles.push(readFileSync(`/sys/kernel/btf/${f}`));
    } catch {
      // no BTF: nothing can be named
    }
  }
  const needle = Buffer.from(`\0${name}\0`, 'latin1');
  return btfFiles.some((b) => b.includes(needle));
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
