/**
 * The datagram transport every probe socket with an error queue shares, trace's and the
 * monitor's alike (UDP, ICMP over a ping or raw socket, built TCP SYNs on a raw socket): one
 * socket, its receive slabs (the error queue's and the normal queue's), the one send policy
 * (`sendDraining`: a send failed by another probe's pending ICMP error reads the queues, delivers
 * those answers, and sends again), the drain of both queues, and how it is driven: by readiness
 * (trace: every reply timed as it comes) or by polling (the monitor's tick, in batches).
 *
 * What a probe carries and how an answer names its probe is not here: that is the capability's
 * codec, which fills the send slab and reads each received message by its index.
 */
import type { RecvBatch, SendBatch } from '../io/batch.js';
import type { Socket } from '../io/socket.js';
import { writeTsIdCmsg, writeTtlCmsg } from '../packet/cmsg.js';
import { ErrqueueTransport, drainQueues, localSendError, sendDraining } from './errqueue.js';
import type { OnSent, ReplyRecord, TransportStats } from './transport.js';

/** The codec's side of a channel: message i of the error queue's slab, or of the normal queue's. */
export interface ChannelReader {
  onError(i: number): void;
  onData(i: number): void;
}

export class DatagramChannel {
  private readonly onErr: (i: number) => void;
  private readonly onData: (i: number) => void;
  private readonly drainAll = () => this.drain(true);

  constructor(
    readonly sock: Socket,
    /** The error queue's slab; null for a socket without one (a raw ICMP socket reads errors whole). */
    readonly errs: RecvBatch | null,
    readonly data: RecvBatch,
    reader: ChannelReader,
    readonly stats: TransportStats = { sendCalls: 0, recvCalls: 0, retries: 0 },
  ) {
    this.onErr = (i) => reader.onError(i);
    this.onData = (i) => reader.onData(i);
  }

  /** Reads the error queue (when `errQueue`), then the normal queue, each until empty; returns how many messages. */
  drain(errQueue = true): number {
    return drainQueues(this.sock.fd, errQueue ? this.errs : null, this.data, this.onErr, this.onData, this.stats);
  }

  /**
   * Sends messages [0, n) of b (filled by the codec), calling onSent as they leave; a failure no
   * drain explains is handed to `onLocal` (throw, or take it: see sendDraining). Returns how many
   * went out or were taken: fewer than n when the socket buffer is full.
   */
  send(b: SendBatch, n: number, retries: Int32Array, onSent: OnSent, onLocal: (i: number, rc: number) => void): number {
    return sendDraining(this.sock.fd, b, n, retries, onSent, this.drainAll, this.stats, onLocal);
  }

  /** Drives the channel by readiness: each time the socket is readable (or has an error queued), it is drained. */
  watch(onFatal: (e: Error) => void): void {
    this.sock.watch(this.drainAll, onFatal);
  }

  /** Closes the socket and gives its slabs back (io/batch.ts: the next socket of this shape takes them). */
  close(): void {
    this.sock.close();
    this.errs?.release();
    this.data.release();
  }
}

/**
 * A trace transport over a DatagramChannel: replies by readiness, and a send that fails on its
 * own (no route, firewall, MTU) ends the trace. The codec (the subclass) fills the slab, adding
 * each probe's control messages with `control`, and reads messages by index.
 */
export abstract class ChannelTransport extends ErrqueueTransport {
  protected ch!: DatagramChannel;
  private onLocal: (i: number, rc: number) => void = () => {};

  /** Opens the channel over `sock` (set up), sending to `target`. */
  protected useChannel(sock: Socket, errs: RecvBatch | null, data: RecvBatch, reader: ChannelReader, target: Uint8Array): void {
    this.ch = new DatagramChannel(sock, errs, data, reader, this.stats);
    this.onLocal = (_i, rc) => {
      throw localSendError(rc, target, this.family);
    };
  }

  /**
   * Send times come from below the socket (trace --bpf: a BPF program stamps each probe as it
   * leaves), so a window goes in one sendmmsg.
   */
  protected sendTimesBelow = false;

  /**
   * Sends slots [0, n) of the slab the codec filled: in one sendmmsg when the kernel stamps each
   * probe's send, else one syscall a probe, its time taken just before it.
   */
  protected sendSlab(b: SendBatch, n: number, retries: Int32Array, onSent: OnSent): number {
    b.perMessage = !this.stampIds && !this.sendTimesBelow;
    return this.ch.send(b, n, retries, onSent, this.onLocal);
  }

  /** Control messages of slot i at `at` in the slab's control bytes: its TTL, and its send-stamp id when stamps are on. */
  protected control(b: SendBatch, at: number, ttl: number, seq: number): number {
    let len = writeTtlCmsg(b.ctrlView, at, this.family, ttl);
    if (this.stampIds) len += writeTsIdCmsg(b.ctrlView, at + len, seq);
    return len;
  }

  /** The socket's descriptor (trace --bpf attaches its socket filter to it). */
  get socketFd(): number {
    return this.ch.sock.fd;
  }

  start(onReply: (r: ReplyRecord) => void, onFatal: (e: Error) => void): void {
    this.onReply = onReply;
    this.ch.watch(onFatal);
  }

  /** Reads the error queue, then the normal queue, until both are empty. */
  drain(): number {
    return this.ch.drain();
  }

  close(): void {
    this.ch?.close();
  }
}
