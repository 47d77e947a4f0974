/**
 * `pathlens trace --xdp`: a topology sweep at high rate (yarrp's and scamper's use): every target
 * of a list gets one UDP probe per TTL, sent as whole frames through an AF_XDP socket
 * (probe/xsk.ts) in a shuffled order, so no router sees a burst; the XDP program hands back the
 * replies with the time it saw them. State is a few typed arrays indexed by probe (target x TTL):
 * nothing is allocated per probe or per reply, and events come at the end, one `path` per target.
 *
 * A probe to target i at TTL t leaves from the run's source port to port + t - 1, like classic
 * traceroute's UDP probes; its reply is named by the quote's headers alone (destination address
 * and port), which RFC 792's 8-byte quotes carry. A reply that names no probe of the run is
 * counted as unmatched, a second reply to one probe as a duplicate: nothing is guessed.
 *
 * Frames need the next hop's link-layer address: the targets must all leave through one
 * interface and one gateway, and the source port is held for the run (probe/xsk-path.ts).
 */
import type { RunHandle } from '../core/run.js';
import type { Sink } from '../core/sink.js';
import { PathlensError } from '../core/errors.js';
import { version } from '../core/version.js';
import { type Family, formatIp, parseIp } from '../packet/addr.js';
import { onesSum } from '../packet/checksum.js';
import { icmpName } from '../packet/icmp.js';
import type { XdpMode } from '../bpf/attach.js';
import type { Placement } from '../io/placement.js';
import { XskPort, type XskCopyMode } from '../probe/xsk.js';
import { type XskFilter, quotesProbe } from '../probe/xsk-match.js';
import { type XskPath, fold16, openXskPath, udpTemplate } from '../probe/xsk-path.js';
import { AddrIndex, scatterStep } from './sweep-order.js';
import { type SweepPathEvent, type SweepDoneEvent, type SweepHop, type SweepStartEvent, TRACE_SCHEMA, type TraceEvent } from './events.js';

export interface SweepRequest {
  /** IP address literals, all of one family. */
  targets: string[];
  family?: Family;
  firstTtl: number;
  maxTtl: number;
  /** Probe at TTL t goes to UDP port + t - 1. */
  port: number;
  srcPort?: number;
  source?: string;
  /** How long to wait for replies after the last probe, ms. */
  waitMs: number;
  /** Probes per second offered, at most; 0: as fast as the TX ring takes them. */
  ratePps: number;
  payloadLen: number;
  placement: Placement;
  xdpMode: XdpMode;
  copyMode: XskCopyMode;
  /** Descriptors per AF_XDP ring (power of two). */
  ringSize: number;
}

export const SWEEP_DEFAULTS = { port: 33434, waitMs: 2000, payloadLen: 8, ringSize: 2048 } as const;
export const SWEEP_MAX_PAYLOAD = 64;

const ETH = 14;
const SLOT = 128;
const BATCH = 64;
const RSLOT = 256;
const RBATCH = 256;
/** Work done in one turn of the event loop before yielding (signals, timers, the reply poller). */
const TURN_MS = 4;
const PAYLOAD = [0x70, 0x61, 0x74, 0x68, 0x6c, 0x65, 0x6e, 0x73]; // "pathlens"

interface Setup extends XskPath {
  alen: number;
  addrs: Uint8Array;
  n: number;
}

/** Everything before the first frame: addresses, then the one next hop (probe/xsk-path.ts). */
function prepare(req: SweepRequest): Setup {
  if (req.targets.length === 0) throw new PathlensError('ERR_USAGE', '--xdp: no targets');
  let family: Family | undefined = req.family;
  const parsed: Uint8Array[] = [];
  for (const t of req.targets) {
    let a: Uint8Array;
    try {
      a = parseIp(t.trim());
    } catch {
      throw new PathlensError('ERR_USAGE', `--xdp takes IP addresses (a sweep resolves no names): ${JSON.stringify(t)} is not one`);
    }
    const f: Family = a.length === 4 ? 4 : 6;
    if (family === undefined) family = f;
    if (f !== family) throw new PathlensError('ERR_USAGE', `--xdp: ${t} is IPv${f} but the sweep is IPv${family} (one family per sweep: -4 or -6)`);
    parsed.push(a);
  }
  const alen = family === 4 ? 4 : 16;
  const addrs = new Uint8Array(parsed.length * alen);
  parsed.forEach((a, i) => addrs.set(a, i * alen));
  const src = req.source !== undefined ? parseIp(req.source) : undefined;
  if (src && src.length !== alen) throw new PathlensError('ERR_USAGE', `--source ${req.source} is not IPv${family}`);
  const path = openXskPath(parsed, { placement: req.placement, source: src, srcPort: req.srcPort, names: req.targets, who: '--xdp' });
  return { ...path, alen, addrs, n: parsed.length };
}

export interface SweepHandle extends RunHandle<SweepDoneEvent> {}

/** Starts a sweep; its events go to `sink` (start, one path per target, done). */
export function startSweep(req: SweepRequest, sink: Sink<TraceEvent>): SweepHandle {
  const t0 = performance.now();
  const tms = () => Math.round((performance.now() - t0) * 1000) / 1000;
  const s = prepare(req);
  const T = req.maxTtl - req.firstTtl + 1;
  const total = s.n * T;
  const alen = s.alen;
  const fam = s.family;
  const index = new AddrIndex(s.addrs, alen, s.n);
  // Per probe (p = target * T + ttl - firstTtl): when it left, when its reply came, who answered and how.
  const sentNs = new Float64Array(total);
  const rxNs = new Float64Array(total).fill(NaN);
  const responder = new Uint8Array(total * alen);
  const icmp = new Uint16Array(total);
  let port: XskPort;
  const dportLo = req.port + req.firstTtl - 1;
  const dportHi = req.port + req.maxTtl - 1;
  if (dportHi > 65535) {
    s.holder.close();
    throw new PathlensError('ERR_USAGE', `--port ${req.port}: TTL ${req.maxTtl}'s probe would go past port 65535`);
  }
  let drain = () => {};
  try {
    port = new XskPort(
      { netns: req.placement.netns, ifindex: s.ifindex, family: fam, sport: s.sport, dportLo, dportHi, xdpMode: req.xdpMode, copyMode: req.copyMode, ringSize: req.ringSize },
      () => drain(),
    );
  } catch (e) {
    s.holder.close();
    throw e;
  }
  const filter: XskFilter = { family: fam, sport: s.sport, dportLo, dportHi };
  const payload = new Uint8Array(req.payloadLen);
  for (let i = 0; i < payload.length; i++) payload[i] = PAYLOAD[i % PAYLOAD.length];
  const tpl = udpTemplate(s, payload, SLOT);
  const frameLen = tpl.len;
  const udpOff = tpl.udpOff;
  // Per target: its address's 16-bit sum (the IPv4 header's and the IPv6 pseudo-header's share).
  const dstSum = new Uint32Array(s.n);
  for (let i = 0; i < s.n; i++) dstSum[i] = onesSum(s.addrs, i * alen, alen);

  const slab = new Uint8Array(BATCH * SLOT);
  const sdv = new DataView(slab.buffer);
  const lens = new Int32Array(BATCH).fill(frameLen);
  const batchProbes = new Int32Array(BATCH);
  const rx = new Uint8Array(RBATCH * RSLOT);
  const rdv = new DataView(rx.buffer);
  const rlens = new Int32Array(RBATCH);
  const rstamps = new Float64Array(RBATCH);

  // Paced sweeps time every probe on its own (one system call each: copy mode sends a frame inside
  // the call, so a batch's last frame leaves after its first); full-rate ones time each batch.
  const perProbe = req.ratePps > 0;
  const stamps = new Float64Array(BATCH);
  /** A probe the device pushed back (still on the TX ring), or -1. */
  let pending = -1;
  const step = scatterStep(total);
  let k = 0; // probes handed to the TX ring so far, in the scattered order
  let cursor = 0; // the scattered index of probe k
  let matched = 0;
  let unmatched = 0;
  let duplicates = 0;
  let sendStartNs = 0;
  let sendEndNs = 0;
  let stopping = false;
  let finished = false;
  let waitTimer: NodeJS.Timeout | null = null;
  let resolveDone!: (d: SweepDoneEvent) => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<SweepDoneEvent>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });

  const start: SweepStartEvent = {
    schema: TRACE_SCHEMA,
    t_ms: 0,
    type: 'sweep-start',
    version: version(),
    time: new Date().toISOString(),
    family: fam,
    targets: s.n,
    probes: total,
    first_ttl: req.firstTtl,
    max_ttl: req.maxTtl,
    port: req.port,
    src_port: s.sport,
    source: formatIp(s.source, 0, fam),
    gateway: formatIp(s.gateway, 0, fam),
    ifindex: s.ifindex,
    payload_len: req.payloadLen,
    wait_ms: req.waitMs,
    rate_pps: req.ratePps > 0 ? req.ratePps : null,
    transport: { kind: 'af_xdp', attached: port.attached, bind: port.bind, queues: port.queueCount, ring: req.ringSize },
    send_stamps: perProbe ? 'per-probe' : 'per-batch',
  };
  sink.event(start);

  /** Writes probe p's frame at slab offset `at`. */
  const writeProbe = (p: number, at: number): void => {
    const i = (p / T) | 0;
    const ttl = req.firstTtl + (p - i * T);
    slab.set(tpl.frame, at);
    const dport = req.port + ttl - 1;
    const a = i * alen;
    if (fam === 4) {
      for (let b = 0; b < 4; b++) slab[at + ETH + 16 + b] = s.addrs[a + b];
      slab[at + ETH + 8] = ttl;
      // The header's sum: the fixed part, the destination, and the TTL (with protocol 17 already in).
      sdv.setUint16(at + ETH + 10, ~fold16(tpl.ipSum + dstSum[i] + (ttl << 8)) & 0xffff);
      sdv.setUint16(at + udpOff + 2, dport);
    } else {
      for (let b = 0; b < 16; b++) slab[at + ETH + 24 + b] = s.addrs[a + b];
      slab[at + ETH + 7] = ttl;
      sdv.setUint16(at + udpOff + 2, dport);
      const c = ~fold16(tpl.udpSum + dstSum[i] + dport) & 0xffff;
      sdv.setUint16(at + udpOff + 6, c === 0 ? 0xffff : c);
    }
  };

  /** Reads the replies waiting on the RX rings; names each by its quote. */
  drain = (): void => {
    if (finished) return;
    for (;;) {
      const got = port.recv(rx, RSLOT, rlens, rstamps, RBATCH);
      for (let r = 0; r < got; r++) onReply(r * RSLOT, rlens[r], rstamps[r]);
      if (got < RBATCH) return;
    }
  };

  const onReply = (at: number, len: number, stamp: number): void => {
    // The program's own test first (a frame in the ring passed it: this is the bounds check),
    // then what the headers name: this run's source, a target, a TTL of the sweep.
    if (!quotesProbe(rx, at, len, filter)) return void unmatched++;
    const end = at + len;
    const l3 = at + ETH;
    let icmpAt: number;
    let inner: number;
    let innerUdp: number;
    if (fam === 4) {
      const ihl = (rx[l3] & 0xf) * 4;
      icmpAt = l3 + ihl;
      inner = icmpAt + 8;
      innerUdp = inner + (rx[inner] & 0xf) * 4;
      if (innerUdp + 4 > end) return void unmatched++;
      // The quoted source must be ours.
      for (let b = 0; b < 4; b++) if (rx[inner + 12 + b] !== s.source[b]) return void unmatched++;
    } else {
      icmpAt = l3 + 40;
      inner = icmpAt + 8;
      innerUdp = inner + 40;
      if (innerUdp + 4 > end) return void unmatched++;
      for (let b = 0; b < 16; b++) if (rx[inner + 8 + b] !== s.source[b]) return void unmatched++;
    }
    const i = index.find(rx, fam === 4 ? inner + 16 : inner + 24);
    const ttl = rdv.getUint16(innerUdp + 2) - req.port + 1;
    if (i < 0 || ttl < req.firstTtl || ttl > req.maxTtl || rdv.getUint16(innerUdp) !== s.sport) return void unmatched++;
    const p = i * T + ttl - req.firstTtl;
    if (!(sentNs[p] > 0)) return void unmatched++; // not sent yet: not a reply to this run's probe
    if (rxNs[p] === rxNs[p]) return void duplicates++;
    rxNs[p] = stamp;
    icmp[p] = (rx[icmpAt] << 8) | rx[icmpAt + 1];
    const src = fam === 4 ? l3 + 12 : l3 + 8;
    for (let b = 0; b < alen; b++) responder[p * alen + b] = rx[src + b];
    matched++;
  };

  /** Sends for up to TURN_MS (or until the rate's budget is spent), then yields. */
  const pump = (): void => {
    if (finished) return;
    try {
      const turnEnd = performance.now() + TURN_MS;
      while (!stopping && k < total) {
        let budget = BATCH;
        if (req.ratePps > 0) {
          const allowed = Math.floor(((port.now() - sendStartNs) / 1e9) * req.ratePps) + 1 - k;
          if (k > 0 && allowed <= 0) break;
          if (k > 0) budget = Math.min(budget, allowed);
        }
        let c = 0;
        let cur = cursor;
        while (c < budget && k + c < total) {
          batchProbes[c] = cur;
          writeProbe(cur, c * SLOT);
          c++;
          cur += step;
          if (cur >= total) cur -= total;
        }
        let posted: number;
        if (perProbe) {
          posted = port.sendEach(slab, SLOT, lens, c, stamps);
          if (port.retriedNs >= 0 && pending >= 0) {
            sentNs[pending] = port.retriedNs; // it left only now
            pending = -1;
          }
          if (k === 0 && posted > 0) sendStartNs = stamps[0];
          for (let j = 0; j < posted; j++) sentNs[batchProbes[j]] = stamps[j];
          if (posted > 0 && port.pushedBack) pending = batchProbes[posted - 1];
        } else {
          posted = port.send(slab, SLOT, lens, c);
          const stamp = port.lastSendNs;
          if (k === 0 && posted > 0) sendStartNs = stamp;
          for (let j = 0; j < posted; j++) sentNs[batchProbes[j]] = stamp;
        }
        for (let j = 0; j < posted; j++) {
          cursor += step;
          if (cursor >= total) cursor -= total;
        }
        k += posted;
        drain();
        if (posted < c || performance.now() > turnEnd) break;
      }
      if (k >= total || stopping) {
        sendEndNs = port.now();
        if (!stopping) waitTimer = setTimeout(() => finish('complete'), req.waitMs);
        else finish('interrupted');
        return;
      }
      if (req.ratePps > 0) setTimeout(pump, 1);
      else setImmediate(pump);
    } catch (e) {
      fail(e as Error);
    }
  };

  const fail = (e: Error): void => {
    if (finished) return;
    finished = true;
    if (waitTimer) clearTimeout(waitTimer);
    try {
      port.close();
    } finally {
      s.holder.close();
    }
    rejectDone(e);
  };

  const finish = (reason: SweepDoneEvent['reason']): void => {
    if (finished) return;
    try {
      drain();
    } catch {
      /* the last read failed: what was read stands */
    }
    finished = true;
    if (waitTimer) clearTimeout(waitTimer);
    if (pending >= 0 && rxNs[pending] !== rxNs[pending]) {
      // Still on the ring when the sweep ended: it never left.
      sentNs[pending] = 0;
      k--;
    }
    let last: ReturnType<XskPort['close']>;
    try {
      last = port.close();
    } finally {
      s.holder.close();
    }
    let reached = 0;
    for (let i = 0; i < s.n; i++) {
      const e = pathOf(i);
      if (e.end === 'reached') reached++;
      sink.event(e);
    }
    const sendMs = k > 0 ? (sendEndNs - sendStartNs) / 1e6 : 0;
    const d: SweepDoneEvent = {
      schema: TRACE_SCHEMA,
      t_ms: tms(),
      type: 'sweep-done',
      reason,
      probes_sent: k,
      replies: matched,
      unmatched,
      duplicates,
      targets_reached: reached,
      send_ms: Math.round(sendMs * 1000) / 1000,
      offered_pps: sendMs > 0 ? Math.round(k / (sendMs / 1000)) : null,
      send_calls: port.sendCalls,
      ring_reads: port.recvCalls,
      kernel: last.kernel,
      sockets: last.sockets,
    };
    sink.event(d);
    resolveDone(d);
  };

  const pathOf = (i: number): SweepPathEvent => {
    const hops: SweepHop[] = [];
    let end: SweepPathEvent['end'] = 'silent';
    let lastAnswered = -1;
    const a = i * alen;
    for (let t = 0; t < T; t++) {
      const p = i * T + t;
      if (rxNs[p] !== rxNs[p]) {
        hops.push({ ttl: req.firstTtl + t, addr: null, rtt_ms: null, kind: null, code: null });
        continue;
      }
      const type = icmp[p] >> 8;
      const name = icmpName(fam, type, icmp[p] & 0xff);
      const addr = formatIp(responder, p * alen, fam);
      hops.push({ ttl: req.firstTtl + t, addr, rtt_ms: Math.round((rxNs[p] - sentNs[p]) / 1000) / 1000, kind: name.kind, code: name.code });
      lastAnswered = t;
      // As the default path decides: an answer from the target itself reaches it; any other
      // non-Time-Exceeded answer ends the path short of it.
      let fromTarget = true;
      for (let b = 0; b < alen; b++) if (responder[p * alen + b] !== s.addrs[a + b]) fromTarget = false;
      if (fromTarget || name.kind !== 'time-exceeded') {
        end = fromTarget ? 'reached' : 'unreachable';
        break;
      }
    }
    // TTLs past the last answer say nothing more than "silent from here".
    hops.length = end === 'silent' ? lastAnswered + 1 : hops.length;
    return { schema: TRACE_SCHEMA, t_ms: tms(), type: 'path', target: req.targets[i].trim(), address: formatIp(s.addrs, a, fam), end, hops };
  };

  setImmediate(pump);
  return {
    done,
    stop() {
      if (finished) return;
      stopping = true;
      if (k >= total) finish('interrupted'); // waiting for the last replies: stop now
    },
  };
}
