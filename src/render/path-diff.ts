/**
 * `pathlens diff`'s text: one line per TTL, the addresses in A and in B, loss and mean RTT in
 * each, and what changed (`changed`: the answering addresses differ, with those added and
 * removed; a loss or RTT change is shown as B − A).
 */
import type { HopDiff } from '../path/diff.js';

const pct = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${x.toFixed(1)}%`);
const ms = (x: number | null | undefined) => (x === null || x === undefined ? '-' : x.toFixed(2));
const sign = (x: number, unit: string) => `${x > 0 ? '+' : ''}${x.toFixed(unit === '%' ? 1 : 2)}${unit}`;

export function diffText(target: string, labelA: string, labelB: string, d: readonly HopDiff[]): string {
  const who = (s: HopDiff['a']) => (s === null ? '(not probed)' : s.addrs.length ? s.addrs.join(',') : '???');
  const w = Math.max(16, ...d.flatMap((h) => [who(h.a).length, who(h.b).length]));
  const lines = [`pathlens diff ${target}: A = ${labelA}, B = ${labelB}`, `${'hop'.padStart(3)}  ${'A'.padEnd(w)}  ${'B'.padEnd(w)}  ${'loss A'.padStart(7)} ${'loss B'.padStart(7)}  ${'avg A'.padStart(8)} ${'avg B'.padStart(8)}  change`];
  for (const h of d) {
    const notes: string[] = [];
    if (h.changed) notes.push(`changed${h.added.length ? ` +${h.added.join(',+')}` : ''}${h.removed.length ? ` -${h.removed.join(',-')}` : ''}`);
    if (h.loss_delta !== null && h.loss_delta !== 0) notes.push(`loss ${sign(h.loss_delta, '%')}`);
    if (h.mean_delta_ms !== null && h.mean_delta_ms !== 0) notes.push(`avg ${sign(h.mean_delta_ms, ' ms')}`);
    if (h.a?.loss_verdict && h.b?.loss_verdict && h.a.loss_verdict !== h.b.loss_verdict) notes.push(`verdict ${h.a.loss_verdict} -> ${h.b.loss_verdict}`);
    lines.push(`${String(h.ttl).padStart(3)}  ${who(h.a).padEnd(w)}  ${who(h.b).padEnd(w)}  ${pct(h.a?.loss).padStart(7)} ${pct(h.b?.loss).padStart(7)}  ${ms(h.a?.mean_ms).padStart(8)} ${ms(h.b?.mean_ms).padStart(8)}  ${notes.join('; ') || '-'}`);
  }
  const changed = d.filter((h) => h.changed).map((h) => h.ttl);
  lines.push(changed.length ? `changed hops: ${changed.join(', ')}` : 'no hop changed');
  return `${lines.join('\n')}\n`;
}
