/**
 * The lab's userspace impairment path (for kernels without netem): an AF_PACKET bridge between the
 * two wire-side ends of each impaired link, run in the lab's wire namespace.
 *
 *   node A  e<i> ==veth== w<i>a [forwarder] w<i>b ==veth== e<i>  node B
 *
 * Frames are read with recvmmsg (kernel arrival timestamps via SO_TIMESTAMPNS), go through a
 * DelayLine per direction, and leave with sendmmsg when due; a CLOCK_REALTIME timerfd polled by
 * libuv wakes the loop for the next due frame, early by the mean observed wake-up lateness.
 *
 * Checksum and GSO offloads: the sockets use PACKET_VNET_HDR, so each frame carries its
 * virtio_net_hdr (partial-checksum and segmentation metadata) in and out unchanged. The receiving
 * stack sees exactly what a plain veth would have handed it.
 */
import { writeFileSync } from 'node:fs';
import {
  AF_PACKET,
  CLOCK_REALTIME,
  PACKET_IGNORE_OUTGOING,
  PACKET_VNET_HDR,
  SOCK_RAW,
  SOL_PACKET,
  SOL_SOCKET,
  SO_RCVBUFFORCE,
  SO_SNDBUF,
  SO_TIMESTAMPNS,
  UV_READABLE,
} from '../../core/constants.js';
import { PathlensError, SysError, check } from '../../core/errors.js';
import { RecvBatch } from '../../io/batch.js';
import { Socket } from '../../io/socket.js';
import { native } from '../../native/index.js';
import { sockaddrLl } from '../../packet/addr.js';
import { CmsgCursor } from '../../packet/cmsg.js';
import { ErrqueueRecord, parseErrqueue } from '../../packet/errqueue.js';
import type { Impairment } from '../spec.js';
import { DelayLine } from './delayline.js';
import { EAGAIN } from '../../core/errno.js';

export interface ForwarderLink {
  idx: number;
  aIf: string;
  bIf: string;
  aToB: Impairment | null;
  bToA: Impairment | null;
}

export interface ForwarderConfig {
  lab: string;
  seed: number;
  links: ForwarderLink[];
  readyPath: string;
  statsPath: string;
}

const SLOT = 65536 + 64; // a GSO frame of up to 64 KiB plus the virtio_net_hdr
const BATCH = 32;
const ARENA = 8 << 20;
const MAX_ENTRIES = 8192;
const MAX_LEAD_MS = 0.5;
/** Lateness bounds (ms) of the cumulative counters in the stats file. */
const LATE_BOUNDS = [0.25, 0.5, 1, 2, 5] as const;

interface Port {
  sock: Socket;
  /** Frames read here go out through `out` via `line`. */
  line: DelayLine;
  out: Port | null;
  name: string;
}

export class Forwarder {
  private readonly cfg: ForwarderConfig;
  private readonly mem: Uint8Array;
  private readonly slab: Uint8Array;
  private readonly batch: RecvBatch;
  private readonly ports: Port[] = [];
  private readonly lines: { line: DelayLine; out: Port; link: number; dir: string }[] = [];
  private readonly sendMeta = new Int32Array(BATCH * 6);
  private readonly times = new Float64Array(4);
  private readonly now = new Float64Array(2);
  private readonly eq = new ErrqueueRecord();
  private readonly cur = new CmsgCursor();
  private readonly baseSec: number;
  private timerFd = -1;
  private timerPoller: ReturnType<typeof Forwarder.newPoller> | null = null;
  private timerTarget = Infinity;
  /** How early the timer is armed: a running estimate of the median wake-up lateness. */
  private lead = 0;
  private readonly lateRing = new Float64Array(1024);
  private lateN = 0;
  /** Actual send time minus due time of recent frames: the precision users get. */
  private readonly sendRing = new Float64Array(4096);
  private sendN = 0;
  /**
   * Cumulative counts of frames by how late they left (more than 0.25, 0.5, 1, 2 and 5 ms after
   * due): a reader diffs two snapshots to learn whether the lab kept its timing over a window.
   */
  private readonly lateCounts = new Float64Array(LATE_BOUNDS.length);
  private writtenN = -1;
  private statsTimer: NodeJS.Timeout | null = null;
  private closed = false;

  private static newPoller(fd: number, cb: (s: number) => void) {
    const P = native().Poller;
    return new P(fd, cb);
  }

  constructor(cfg: ForwarderConfig) {
    this.cfg = cfg;
    const lines = cfg.links.length * 2;
    // One buffer: the receive slab first, then one arena per direction, so frames move from the
    // slab into their arena with copyWithin (no allocation) and leave from the arena directly.
    this.mem = new Uint8Array(BATCH * SLOT + lines * ARENA);
    this.slab = this.mem.subarray(0, BATCH * SLOT);
    this.batch = new RecvBatch(BATCH, SLOT, 64, 0, this.slab);
    native().clockGettime(CLOCK_REALTIME, this.now);
    this.baseSec = this.now[0];
  }

  private ms(sec: number, nsec: number): number {
    return (sec - this.baseSec) * 1e3 + nsec / 1e6;
  }

  private nowMs(): number {
    native().clockGettime(CLOCK_REALTIME, this.now);
    return this.ms(this.now[0], this.now[1]);
  }

  private openPort(ifname: string): Socket {
    const ifindex = native().ifNameToIndex(ifname);
    if (ifindex < 0) throw new SysError('if_nametoindex', ifindex, ifname);
    const s = new Socket(AF_PACKET, SOCK_RAW, 0);
    try {
      s.setInt(SOL_PACKET, PACKET_VNET_HDR, 1, 'PACKET_VNET_HDR');
      s.setInt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1, 'PACKET_IGNORE_OUTGOING');
      s.setInt(SOL_SOCKET, SO_TIMESTAMPNS, 1, 'SO_TIMESTAMPNS');
      s.trySetInt(SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20);
      s.trySetInt(SOL_SOCKET, SO_SNDBUF, 8 << 20);
      s.bind(sockaddrLl(ifindex), `bind to ${ifname}`);
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  start(): void {
    let arena = BATCH * SLOT;
    for (const l of this.cfg.links) {
      const a = this.openPort(l.aIf);
      const b = this.openPort(l.bIf);
      const seed = (this.cfg.seed * 2654435761 + l.idx * 2) >>> 0;
      const lineAB = new DelayLine(this.mem, arena, ARENA, MAX_ENTRIES, BATCH, l.aToB, seed);
      arena += ARENA;
      const lineBA = new DelayLine(this.mem, arena, ARENA, MAX_ENTRIES, BATCH, l.bToA, seed + 1);
      arena += ARENA;
      const pa: Port = { sock: a, line: lineAB, out: null, name: l.aIf };
      const pb: Port = { sock: b, line: lineBA, out: pa, name: l.bIf };
      pa.out = pb;
      this.ports.push(pa, pb);
      this.lines.push({ line: lineAB, out: pb, link: l.idx, dir: 'a_to_b' }, { line: lineBA, out: pa, link: l.idx, dir: 'b_to_a' });
    }
    this.timerFd = check('timerfd_create', native().timerfdCreate(CLOCK_REALTIME));
    this.timerPoller = Forwarder.newPoller(this.timerFd, (status) => this.onTimer(status));
    check('uv_poll_start', this.timerPoller.start(UV_READABLE));
    for (const p of this.ports) {
      p.sock.watch(
        () => this.onReadable(p),
        (e) => this.fatal(e),
      );
    }
    // Stats are written only while nothing is queued: the sort and the file write must never
    // hold back a frame that is due.
    this.statsTimer = setInterval(() => {
      if (this.sendN !== this.writtenN && this.lines.every((l) => l.line.queued === 0)) this.writeStats();
    }, 100);
    this.statsTimer.unref();
    writeFileSync(this.cfg.readyPath, `${process.pid}\n`);
  }

  private onReadable(p: Port): number {
    let total = 0;
    const b = this.batch;
    for (;;) {
      const n = b.recv(p.sock.fd, 0);
      if (n <= 0) {
        if (n < 0 && n !== -EAGAIN) this.fatal(new SysError('recvmmsg', n, p.name));
        break;
      }
      let fallback = -1;
      for (let i = 0; i < n; i++) {
        parseErrqueue(b.ctrlView, b.ctrlOff(i), b.ctrlOff(i) + b.ctrlLen(i), this.eq, this.cur);
        let arrival: number;
        if (this.eq.hasTime) arrival = this.ms(this.eq.sec, this.eq.nsec);
        else arrival = fallback < 0 ? (fallback = this.nowMs()) : fallback;
        p.line.admit(i * SLOT, b.dataLen(i), arrival);
      }
      total += n;
      if (n < BATCH) break;
    }
    this.service(false);
    return total;
  }

  private onTimer(status: number): void {
    if (this.closed) return;
    if (status < 0) {
      this.fatal(new SysError('uv_poll', status, 'timerfd'));
      return;
    }
    native().read(this.timerFd, this.scratch8);
    const now = this.nowMs();
    if (this.timerTarget !== Infinity) this.lateRing[this.lateN++ & 1023] = now - this.timerTarget;
    this.timerTarget = Infinity;
    this.service(true);
  }

  private readonly scratch8 = new Uint8Array(8);

  /** Sends every frame due now (within the current lead), then arms the timer for the next one. */
  private service(fromTimer: boolean): void {
    if (this.closed) return;
    const until = this.nowMs() + this.lead;
    let next = Infinity;
    for (const l of this.lines) {
      for (;;) {
        const k = l.line.popDue(until, this.sendMeta, BATCH);
        if (k === 0) break;
        let sent = 0;
        while (sent < k) {
          if (sent > 0) this.sendMeta.copyWithin(0, sent * 6, k * 6);
          const rc = native().sendmmsg(l.out.sock.fd, k - sent, this.sendMeta, this.mem, null, null, 0, this.times);
          if (rc <= 0) break; // a full or vanished device: the frames are counted as tx errors
          sent += rc;
        }
        if (sent > 0) {
          // The frames left when sendmmsg started (its return also covers the receivers' stack).
          const t = this.ms(this.times[0], this.times[1]);
          for (let i = 0; i < sent; i++) {
            const late = t - l.line.poppedDue(i);
            this.sendRing[this.sendN++ & 4095] = late;
            for (let j = 0; j < LATE_BOUNDS.length && late > LATE_BOUNDS[j]; j++) this.lateCounts[j]++;
          }
          // Stochastic median of the first frame's lateness, stepped by a fixed amount: the lead
          // converges to where half the frames leave early and half late. The median, not the
          // mean, so that a few very late wake-ups do not make every other frame leave early.
          // Only frames that waited for the timer count (zero-delay frames are always "late").
          if (fromTimer) {
            this.lead += t - l.line.poppedDue(0) > 0 ? 0.002 : -0.002;
            if (this.lead < 0) this.lead = 0;
            else if (this.lead > MAX_LEAD_MS) this.lead = MAX_LEAD_MS;
          }
        }
        l.line.release(sent);
      }
      const d = l.line.nextDue();
      if (d < next) next = d;
    }
    if (next !== Infinity) this.arm(next - this.lead);
    else if (fromTimer) this.timerTarget = Infinity;
  }

  private arm(at: number): void {
    if (at >= this.timerTarget && this.timerTarget !== Infinity) return;
    const abs = at > 0 ? at : 0.000001;
    const sec = this.baseSec + Math.floor(abs / 1e3);
    const nsec = Math.floor((abs % 1e3) * 1e6);
    this.timerTarget = at;
    const rc = native().timerfdSet(this.timerFd, sec, Math.min(nsec, 999999999), 1);
    if (rc < 0) this.fatal(new SysError('timerfd_settime', rc));
  }

  stats(): Record<string, unknown> {
    return {
      pid: process.pid,
      lead_ms: Math.round(this.lead * 1000) / 1000,
      wake_late_ms: quantiles(this.lateRing, this.lateN),
      send_late_ms: quantiles(this.sendRing, this.sendN),
      sent_total: this.sendN,
      sent_late: Object.fromEntries(LATE_BOUNDS.map((b, j) => [`over_${b}_ms`, this.lateCounts[j]])),
      lines: this.lines.map((l) => ({ link: l.link, dir: l.dir, queued: l.line.queued, ...l.line.stats })),
    };
  }

  writeStats(): void {
    this.writtenN = this.sendN;
    try {
      writeFileSync(this.cfg.statsPath, `${JSON.stringify(this.stats())}\n`);
    } catch {
      // the state directory went away (lab down): nothing to report to
    }
  }

  private fatal(e: Error): void {
    if (this.closed) return;
    process.stderr.write(`pathlens impair: ${e.message}\n`);
    this.close();
    process.exitCode = 1;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.writeStats();
    if (this.statsTimer) clearInterval(this.statsTimer);
    for (const p of this.ports) p.sock.close();
    this.timerPoller?.close();
  }
}

const sortBuf = new Float64Array(4096);

function quantiles(ring: Float64Array, count: number): { p1: number; p50: number; p90: number; p99: number; samples: number } | null {
  const n = Math.min(count, ring.length);
  if (n === 0) return null;
  sortBuf.set(ring.subarray(0, n));
  const v = sortBuf.subarray(0, n).sort(); // typed arrays sort numerically, in place
  const q = (p: number) => Math.round(v[Math.min(n - 1, Math.floor(p * n))] * 1000) / 1000;
  return { p1: q(0.01), p50: q(0.5), p90: q(0.9), p99: q(0.99), samples: n };
}

export function parseForwarderConfig(text: string): ForwarderConfig {
  let cfg: ForwarderConfig;
  try {
    cfg = JSON.parse(text) as ForwarderConfig;
  } catch (e) {
    throw new PathlensError('ERR_CONFIG', `forwarder config is not JSON: ${(e as Error).message}`);
  }
  if (!cfg || !Array.isArray(cfg.links) || typeof cfg.readyPath !== 'string') throw new PathlensError('ERR_CONFIG', 'forwarder config lacks links/readyPath');
  return cfg;
}
