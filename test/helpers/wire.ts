/**
 * RTTs on the wire, for checking the RTTs a trace reports: a capture of the probing host's
 * interface (tcpdump, nanosecond timestamps) gives each UDP probe's time out and the time its
 * ICMP error (Time Exceeded or Port Unreachable, quoting the probe's UDP header) came in; the
 * probe is named by its ports, so each trace needs a source port of its own (--sport): a port
 * pair seen twice is an error, never a guess. IPv4 over Ethernet, as the lab's veth links are.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { CaptureReader, CaptureRecord } from '../../src/pping/pcap.js';
import type { TraceEvent } from '../../src/trace/events.js';

const key = (sport: number, dport: number) => `${sport}>${dport}`;

/** Wire RTT in µs of every probe answered in the capture, by `sport>dport`. */
export function wireRtts(pcap: string, local: string): Map<string, number> {
  const me = local.split('.').map(Number);
  const out = new Map<string, number>();
  const sent = new Map<string, number>();
  const r = CaptureReader.open(pcap);
  const rec = new CaptureRecord();
  let sec0 = -1;
  try {
    while (r.next(rec)) {
      if (rec.linktype !== 1 || rec.len < 14 + 20) continue;
      const b = rec.data.subarray(rec.off, rec.off + rec.len);
      if (b[12] !== 0x08 || b[13] !== 0x00) continue;
      if (sec0 < 0) sec0 = rec.sec;
      const t = (rec.sec - sec0) * 1e6 + rec.nsec / 1e3;
      const ip = 14;
      const ihl = (b[ip] & 0x0f) * 4;
      const proto = b[ip + 9];
      const fromMe = me.every((x, i) => b[ip + 12 + i] === x);
      const l4 = ip + ihl;
      if (proto === 17 && fromMe && b.length >= l4 + 4) {
        const k = key((b[l4] << 8) | b[l4 + 1], (b[l4 + 2] << 8) | b[l4 + 3]);
        if (sent.has(k)) throw new Error(`probe ${k} sent twice in the capture: give each trace its own --sport`);
        sent.set(k, t);
      } else if (proto === 1 && !fromMe && (b[l4] === 11 || b[l4] === 3)) {
        const inner = l4 + 8;
        if (b.length < inner + 20 || b[inner + 9] !== 17) continue;
        const u = inner + (b[inner] & 0x0f) * 4;
        if (b.length < u + 4) continue;
        const k = key((b[u] << 8) | b[u + 1], (b[u + 2] << 8) | b[u + 3]);
        const s = sent.get(k);
        if (s !== undefined && !out.has(k)) out.set(k, t - s);
      }
    }
  } finally {
    r.close();
  }
  return out;
}

/** The RTT in µs a trace reported for each answered probe, by `sport>dport`, with its send clock. */
export function reportedRtts(events: TraceEvent[]): Map<string, { us: number; send: string }> {
  let sport = 0;
  const port = new Map<number, number>();
  const out = new Map<string, { us: number; send: string }>();
  for (const e of events) {
    if (e.type === 'start') sport = e.src_port;
    else if (e.type === 'probe' && e.dst_port !== null) port.set(e.seq, e.dst_port);
    else if (e.type === 'reply' && !e.late && e.rtt_ms !== null) {
      const d = port.get(e.seq);
      if (d !== undefined) out.set(key(sport, d), { us: e.rtt_ms * 1e3, send: e.send_ts });
    }
  }
  return out;
}

/** |reported − wire| in µs for every probe both saw, sorted. */
export function rttErrors(reported: Map<string, { us: number }>, wire: Map<string, number>): number[] {
  const errs: number[] = [];
  for (const [k, r] of reported) {
    const w = wire.get(k);
    if (w !== undefined) errs.push(Math.abs(r.us - w));
  }
  return errs.sort((a, b) => a - b);
}

export const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

/** tcpdump writing the probes and their answers on `iface` of namespace `ns` to `pcap` (nanosecond stamps), once it listens; stop it with SIGINT. */
export async function captureProbes(ns: string, iface: string, pcap: string): Promise<ChildProcess> {
  const dump = spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-i', iface, '-w', pcap, '-U', '--immediate-mode', '-s', '160', '--time-stamp-precision=nano', 'udp or icmp'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  dump.stderr!.on('data', (d) => (err += d));
  while (!err.includes('listening on')) {
    if (dump.exitCode !== null) throw new Error(`tcpdump: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return dump;
}
