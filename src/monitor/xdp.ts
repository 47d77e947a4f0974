/**
 * `monitor --xdp`: the UDP method's probes as whole frames through an AF_XDP socket
 * (probe/xsk.ts), the answers handed over by the XDP program with the time it saw them. It means
 * what the UDP method means (a port unreachable from the target proves it alive; anything else
 * from a router says it cannot be reached) and carries the same 16-byte cookie (magic, session,
 * seq, target index), here read back from the quote, which Linux and most routers make whole.
 * A sendmmsg of 256 probes becomes a copy onto the TX ring and a few sendto calls; answers are
 * read on the monitor's tick from shared memory, without a system call per batch.
 *
 * Frames need one next hop: the first probes open the path (probe/xsk-path.ts), and every target
 * met later is checked against it (once, and again when its address changes); a target with
 * another route ends the run with one line.
 */
import type { Placement } from '../io/placement.js';
import { type Family, formatIp } from '../packet/addr.js';
import { onesSum } from '../packet/checksum.js';
import { COOKIE_TARGET_LEN, cookieSeq, cookieTarget, isOurCookie, writeCookie } from '../probe/cookie.js';
import type { XdpMode } from '../bpf/attach.js';
import { XskPort, type XskCopyMode } from '../probe/xsk.js';
import { type XskFilter, quotesProbe } from '../probe/xsk-match.js';
import { type UdpTemplate, type XskPath, checkXskPath, fold16, openXskPath, udpTemplate } from '../probe/xsk-path.js';
import type { Answer, Prober, ProberHooks } from './prober.js';
import { ADDR_STRIDE } from './table.js';

/** AF_XDP for the UDP method: how the program is attached and the sockets bound. */
export interface XdpProbing {
  mode: XdpMode;
  copy: XskCopyMode;
  ring: number;
}

const ETH = 14;
const SLOT = 128;
const BATCH = 64;
const RSLOT = 256;
const RBATCH = 256;
const TTL = 64;

export class XdpUdpProber implements Prober {
  readonly method = 'udp' as const;
  readonly socket = 'af_xdp';
  private path: XskPath | null = null;
  private port: XskPort | null = null;
  private tpl: UdpTemplate | null = null;
  private filter: XskFilter | null = null;
  /** Targets whose route was checked against the path (by index; cleared by forget). */
  private checked = new Uint8Array(1024);
  private readonly slab = new Uint8Array(BATCH * SLOT);
  private readonly sdv = new DataView(this.slab.buffer);
  private readonly lens = new Int32Array(BATCH);
  private readonly rx = new Uint8Array(RBATCH * RSLOT);
  private readonly rdv = new DataView(this.rx.buffer);
  private readonly rlens = new Int32Array(RBATCH);
  private readonly rstamps = new Float64Array(RBATCH);
  private readonly t = { sec: 0, nsec: 0 };
  private readonly ans: Answer = { target: -1, seq: -1, kind: 'alive', sec: 0, nsec: 0, kernelTs: true, detail: '' };
  private failed = false;

  constructor(
    readonly family: Family,
    private readonly session: number,
    private readonly hooks: ProberHooks,
    private readonly placement: Placement,
    private readonly source: Uint8Array | undefined,
    private readonly xdp: XdpProbing,
  ) {}

  /** Opens the path and the port for the first probes' targets. */
  private open(dsts: Uint8Array[], names: string[]): void {
    const path = openXskPath(dsts, { placement: this.placement, source: this.source, names, who: '--xdp' });
    try {
      this.filter = { family: this.family, sport: path.sport, dportLo: 1, dportHi: 65535 };
      this.port = new XskPort({ netns: this.placement.netns, ifindex: path.ifindex, ...this.filter, xdpMode: this.xdp.mode, copyMode: this.xdp.copy, ringSize: this.xdp.ring }, null);
    } catch (e) {
      path.holder.close();
      throw e;
    }
    this.path = path;
    // The payload: the cookie's constant head; seq and target are written (and summed) per probe.
    const payload = new Uint8Array(COOKIE_TARGET_LEN);
    writeCookie(new DataView(payload.buffer), 0, this.session, 0, 0);
    const tpl = udpTemplate(path, payload, SLOT);
    tpl.frame[ETH + (this.family === 4 ? 8 : 7)] = TTL;
    if (this.family === 4) tpl.ipSum = onesSum(tpl.frame, ETH, 20);
    this.tpl = tpl;
    this.lens.fill(tpl.len);
  }

  /** Opens the path for, or checks, the targets of probes [0, n) not seen yet. */
  private route(n: number, targets: Int32Array, addrs: Uint8Array): void {
    const alen = this.family === 4 ? 4 : 16;
    const dsts: Uint8Array[] = [];
    const names: string[] = [];
    for (let i = 0; i < n; i++) {
      const t = targets[i];
      if (t >= this.checked.length) {
        const grown = new Uint8Array(Math.max(t + 1, 2 * this.checked.length));
        grown.set(this.checked);
        this.checked = grown;
      }
      if (this.checked[t]) continue;
      this.checked[t] = 1;
      const a = addrs.slice(ADDR_STRIDE * t, ADDR_STRIDE * t + alen);
      dsts.push(a);
      names.push(formatIp(a, 0, this.family));
    }
    if (dsts.length === 0) return;
    if (!this.path) this.open(dsts, names);
    else checkXskPath(this.path, dsts, { placement: this.placement, names, who: '--xdp' }, 'the first targets');
  }

  send(n: number, targets: Int32Array, seqs: Int32Array, addrs: Uint8Array, ports: Int32Array, onSent: (i: number, sec: number, nsec: number) => void): number {
    if (this.failed) return 0;
    try {
      this.route(n, targets, addrs);
    } catch (e) {
      this.failed = true;
      this.hooks.onFatal(e as Error);
      return 0;
    }
    const port = this.port!;
    const tpl = this.tpl!;
    const v4 = this.family === 4;
    const udp = tpl.udpOff;
    const slab = this.slab;
    const dv = this.sdv;
    let done = 0;
    while (done < n) {
      const k = Math.min(BATCH, n - done);
      for (let j = 0; j < k; j++) {
        const i = done + j;
        const at = j * SLOT;
        const t = targets[i];
        slab.set(tpl.frame, at);
        const a = ADDR_STRIDE * t;
        const dport = ports[i];
        writeCookie(dv, at + udp + 8, this.session, seqs[i], t);
        const varying = onesSum(slab, at + udp + 8 + 8, 8); // the cookie's seq and target
        if (v4) {
          for (let b = 0; b < 4; b++) slab[at + ETH + 16 + b] = addrs[a + b];
          dv.setUint16(at + ETH + 10, ~fold16(tpl.ipSum + onesSum(addrs, a, 4)) & 0xffff);
          dv.setUint16(at + udp + 2, dport);
          // IPv4's UDP checksum is optional: left zero.
        } else {
          for (let b = 0; b < 16; b++) slab[at + ETH + 24 + b] = addrs[a + b];
          dv.setUint16(at + udp + 2, dport);
          const c = ~fold16(tpl.udpSum + onesSum(addrs, a, 16) + dport + varying) & 0xffff;
          dv.setUint16(at + udp + 6, c === 0 ? 0xffff : c);
        }
      }
      let posted: number;
      try {
        posted = port.send(slab, SLOT, this.lens, k);
      } catch (e) {
        this.failed = true;
        this.hooks.onFatal(e as Error);
        return done;
      }
      port.wallTime(port.lastSendNs, this.t);
      for (let j = 0; j < posted; j++) onSent(done + j, this.t.sec, this.t.nsec);
      done += posted;
      if (posted < k) break; // the ring is full: the rest goes at the next tick
    }
    return done;
  }

  /** Reads the answers the program handed over; returns how many frames. */
  poll(): number {
    const port = this.port;
    if (!port || this.failed) return 0;
    let total = 0;
    for (;;) {
      let got: number;
      try {
        got = port.recv(this.rx, RSLOT, this.rlens, this.rstamps, RBATCH);
      } catch (e) {
        this.failed = true;
        this.hooks.onFatal(e as Error);
        return total;
      }
      for (let r = 0; r < got; r++) this.answer(r * RSLOT, this.rlens[r], this.rstamps[r]);
      total += got;
      if (got < RBATCH) return total;
    }
  }

  private answer(at: number, len: number, stamp: number): void {
    const b = this.rx;
    if (!quotesProbe(b, at, len, this.filter!)) return;
    const v4 = this.family === 4;
    const l3 = at + ETH;
    const icmp = v4 ? l3 + (b[l3] & 0xf) * 4 : l3 + 40;
    const inner = icmp + 8;
    const udp = v4 ? inner + (b[inner] & 0xf) * 4 : inner + 40;
    const cookie = udp + 8;
    const end = at + len;
    if (!isOurCookie(this.rdv, cookie, end - cookie, this.session, COOKIE_TARGET_LEN)) return;
    const a = this.ans;
    a.target = cookieTarget(this.rdv, cookie);
    a.seq = cookieSeq(this.rdv, cookie);
    const type = b[icmp];
    const code = b[icmp + 1];
    const fromTarget = this.hooks.fromTarget(a.target, b, v4 ? l3 + 12 : l3 + 8);
    const portUnreach = v4 ? type === 3 && code === 3 : type === 1 && code === 4;
    a.kind = portUnreach && fromTarget ? 'alive' : 'unreachable';
    a.detail = portUnreach && fromTarget ? 'port unreachable' : `ICMP type ${type} code ${code}${fromTarget ? '' : ' from a router'}`;
    this.port!.wallTime(stamp, a);
    a.kernelTs = true;
    this.hooks.onAnswer(a);
  }

  forget(target: number): void {
    if (target < this.checked.length) this.checked[target] = 0;
  }

  rxDropped(): number {
    if (!this.port) return 0;
    const s = this.port.stats().sockets;
    return s.rx_dropped + s.rx_ring_full;
  }

  close(): void {
    this.port?.close();
    this.path?.holder.close();
    this.port = null;
    this.path = null;
  }
}

/** Refuses what --xdp cannot do for a monitor, in one line (null: it may try). */
export function xdpMonitorRefusal(o: { mark?: number; family?: Family }): string | null {
  if (o.mark !== undefined) return '--mark does not go with --xdp (frames go to the device, past the rules a mark selects)';
  if (o.family === undefined) return '--xdp needs -4 or -6 (one XDP program on the interface: one family)';
  return null;
}

