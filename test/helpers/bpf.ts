/** What a BPF run may leave behind, checked after it ends. */
import { runIn } from './lab.js';

/** pathlens's programs still loaded anywhere, and what is left on the interface. */
export async function leftovers(ns: string, iface: string): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < 40; i++) {
    // A program goes once the kernel's RCU grace period after its last reference has passed.
    const progs = await runIn(ns, ['bpftool', 'prog', 'show']);
    const names = progs.stdout.split('\n').filter((l) => /name pping_/.test(l));
    if (names.length === 0) break;
    if (i === 39) out.push(...names);
    await new Promise((r) => setTimeout(r, 50));
  }
  const link = await runIn(ns, ['ip', '-d', 'link', 'show', iface]);
  if (/xdp/.test(link.stdout)) out.push(`xdp on ${iface}: ${link.stdout}`);
  const q = await runIn(ns, ['tc', 'qdisc', 'show', 'dev', iface]);
  if (/clsact/.test(q.stdout)) out.push(`clsact on ${iface}`);
  const net = await runIn(ns, ['bpftool', 'net', 'show', 'dev', iface]);
  if (/pping/.test(net.stdout)) out.push(`bpftool net: ${net.stdout}`);
  return out;
}

