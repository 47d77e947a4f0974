/**
 * Loads the native syscall shim and types its whole surface. The loader names every path it tried
 * when none works, so a missing build says what to run.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PathlensError } from '../core/errors.js';
import { packageRoot } from '../core/paths.js';

export interface NativePoller {
  /** Start watching for UV_READABLE / UV_WRITABLE. -> 0 | -errno */
  start(events: number): number;
  stop(): number;
  ref(): number;
  unref(): number;
  /** Stops, closes the handle, and closes the fd once libuv has let go of it. Idempotent. */
  close(): number;
}

export interface NativePollerCtor {
  new (fd: number, callback: (status: number, events: number) => void): NativePoller;
}

/** Sends messages [0, count) described by meta (6 Int32 each) from the slabs; -> messages sent | -errno. */
export type SendMessages = (fd: number, count: number, meta: Int32Array, data: Uint8Array, names: Uint8Array | null, ctrl: Uint8Array | null, flags: number, times: Float64Array) => number;

/** Every function returns a count or 0 on success and -errno on failure. */
export interface NativeShim {
  socket(domain: number, type: number, protocol: number): number;
  close(fd: number): number;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array): number;
  getsockopt(fd: number, level: number, name: number, out: Uint8Array): number;
  bind(fd: number, addr: Uint8Array): number;
  connect(fd: number, addr: Uint8Array): number;
  getsockname(fd: number, out: Uint8Array): number;
  /** meta: 6 Int32 per message (dataOff, dataLen, nameOff, nameLen, ctrlOff, ctrlLen); times[0..1] before the call, [2..3] after. */
  sendmmsg: SendMessages;
  /** sendmmsg's messages, each by its own sendmsg; times[2i..2i+1]: CLOCK_REALTIME just before message i's. Stops at the first failure. */
  sendeach: SendMessages;
  /** meta receives 4 Int32 per message (dataLen, ctrlLen, nameLen, msgFlags). */
  recvmmsg(
    fd: number,
    count: number,
    flags: number,
    data: Uint8Array,
    dataSlot: number,
    ctrl: Uint8Array | null,
    ctrlSlot: number,
    names: Uint8Array | null,
    nameSlot: number,
    meta: Int32Array,
  ): number;
  setns(fd: number, nstype: number): number;
  /** prctl(option, arg2) -> result | -errno. */
  prctl(option: number, arg2: number): number;
  /** The main thread's effective and permitted capabilities := hi:lo, inheritable empty -> 0 | -errno. */
  capset(lo: number, hi: number): number;
  /** At most n malloc arenas from now on (mallopt M_ARENA_MAX) -> 1, or 0 if refused. */
  mallocArenas(n: number): number;
  clockGettime(clockid: number, out: Float64Array): number;
  timerfdCreate(clockid: number): number;
  timerfdSet(fd: number, sec: number, nsec: number, absolute: number): number;
  read(fd: number, out: Uint8Array): number;
  ifNameToIndex(name: string): number;
  /** A close-on-exec duplicate of fd. */
  dup(fd: number): number;
  Poller: NativePollerCtor;

  // AF_XDP (native/xsk.c): the UMEM and rings stay in C; frames are copied to and from caller slabs.
  /** One AF_XDP socket bound to ifindex/queue: out = [handle, fd] -> 0 | -errno. frames = 2 * ringSize. */
  xskOpen(ifindex: number, queue: number, frames: number, ringSize: number, bindFlags: number, out: Int32Array): number;
  /** Posts frames [0, count) of data (i at i * slot, lens[i] bytes) and makes the kernel send them -> posted | -errno; out = [mono sec, nsec, send calls]. */
  xskSend(handle: number, data: Uint8Array, slot: number, lens: Int32Array, count: number, out: Float64Array): number;
  /**
   * The same frames one at a time, each by its own sendto, times[2i..2i+1] = CLOCK_MONOTONIC just
   * before frame i's -> posted | -errno. The last one posted may be pushed back (left on the ring):
   * times[2 * count + 3] = 1 says so, and the next call sends it first and sets
   * times[2 * count] = 1, times[2 * count + 1..2] its time.
   */
  xskSendEach(handle: number, data: Uint8Array, slot: number, lens: Int32Array, count: number, times: Float64Array): number;
  /** Up to count received frames into data (i at i * slot, cut to slot bytes), lens[i] = bytes copied -> frames | -errno. */
  xskRecv(handle: number, data: Uint8Array, slot: number, lens: Int32Array, count: number): number;
  xskClose(handle: number): number;

  // BPF (native/bpf.c). libbpf is dlopen()ed on first use; the rest is bpf(2).
  /** null when libbpf.so.1 is usable, else what the dynamic loader said. */
  bpfAvailable(): string | null;
  /** libbpf's messages (warnings, verifier logs) since the last call. */
  bpfLog(): string;
  /** -> object handle | -errno (-ELIBACC: no libbpf). */
  bpfOpen(elf: Uint8Array, name: string): number;
  bpfSetMaxEntries(handle: number, map: string, n: number): number;
  bpfLoad(handle: number): number;
  /** fds owned by the object (closed by bpfClose). */
  bpfProgFd(handle: number, name: string): number;
  bpfMapFd(handle: number, name: string): number;
  bpfClose(handle: number): number;
  /** BPF_LINK_CREATE -> link fd; the link goes when its last fd closes. */
  bpfLinkCreate(progFd: number, ifindex: number, attachType: number, flags: number): number;
  bpfMapUpdate(fd: number, key: Uint8Array, value: Uint8Array, flags: number): number;
  bpfMapLookup(fd: number, key: Uint8Array, out: Uint8Array): number;
  bpfMapDelete(fd: number, key: Uint8Array): number;
  /** Reads and removes one entry (hash maps, Linux 5.14): 0 | -errno. */
  bpfMapLookupAndDelete(fd: number, key: Uint8Array, out: Uint8Array): number;
  /** io[0]: entries wanted in, copied out; -ENOENT: the walk is complete. */
  bpfMapLookupBatch(fd: number, inBatch: Uint8Array | null, outBatch: Uint8Array, keys: Uint8Array, values: Uint8Array, io: Int32Array): number;
  /** -> fd; programs count run_time_ns/run_cnt while it is open. */
  bpfEnableStats(): number;
  /** out = [run_time_ns, run_cnt, prog id] */
  bpfProgStats(progFd: number, out: Float64Array): number;
  /** BPF_PROG_TEST_RUN of a tc program on an Ethernet frame with skb->tstamp; out = [retval, ns]. */
  bpfTestRunSkb(progFd: number, frame: Uint8Array, tstampNs: number, out: Float64Array): number;
  /** Runs an XDP program once on frame (BPF_PROG_TEST_RUN): out = [retval, bytes of dataOut written]. */
  bpfTestRunXdp(progFd: number, frame: Uint8Array, dataOut: Uint8Array, out: Float64Array): number;
  /** create (1: -EEXIST when present) or destroy (0) the clsact qdisc of ifindex. */
  bpfTcHook(ifindex: number, create: number): number;
  /** Attach progFd as a cls_bpf filter (direct action); progFd < 0 detaches (handle, priority). */
  bpfTcFilter(ifindex: number, egress: number, handle: number, priority: number, progFd: number): number;
  /** Before bpfLoad: load this program or not (libbpf's autoload). */
  bpfProgSetAutoload(handle: number, prog: string, load: boolean): number;
  /** Before bpfLoad: program type and expected attach type, for sections libbpf does not know. */
  bpfProgSetType(handle: number, prog: string, progType: number, expectedAttachType: number): number;
  /** Before load: the function (fentry) or raw tracepoint (tp_btf) of a program whose section names none. */
  bpfProgSetAttachTarget(handle: number, prog: string, target: string): number;
  /** Before bpfLoad: a map's initial contents (".rodata": constants for the verifier). */
  bpfMapSetInitialValue(handle: number, map: string, value: Uint8Array): number;
  /** BPF_RAW_TRACEPOINT_OPEN: a raw_tp program on `name`, or a tp_btf program (name null); fd or -errno. */
  bpfRawTracepointOpen(progFd: number, name: string | null): number;
  /** BPF_LINK_CREATE BPF_NETFILTER in the calling thread's namespace; link fd or -errno. */
  bpfNetfilterLink(progFd: number, pf: number, hooknum: number, priority: number, flags: number): number;
  /** BPF_LINK_CREATE BPF_PERF_EVENT: a program on an open perf event; link fd or -errno. */
  bpfPerfEventLink(progFd: number, perfFd: number): number;
  /** perf_event_open of a classic tracepoint (its tracefs id), all processes; fd or -errno. */
  perfTracepointOpen(id: number): number;
  ringbufOpen(mapFd: number): number;
  /** Copies whole records as [u32 len][u32 0][data padded to 8] -> bytes written. */
  ringbufRead(handle: number, out: Uint8Array): number;
  ringbufClose(handle: number): number;
}

let cached: NativeShim | undefined;

export function native(): NativeShim {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  let root: string;
  try {
    root = packageRoot();
  } catch {
    root = process.cwd();
  }
  const candidates = [
    process.env.PATHLENS_NATIVE,
    join(root, 'build', 'Release', 'pathlens.node'),
    join(root, 'build', 'Debug', 'pathlens.node'),
  ].filter((p): p is string => !!p);
  const failures: string[] = [];
  for (const p of candidates) {
    if (!existsSync(p)) {
      failures.push(`${p}: not found`);
      continue;
    }
    try {
      cached = require(p) as NativeShim;
      return cached;
    } catch (e) {
      failures.push(`${p}: ${(e as Error).message}`);
    }
  }
  throw new PathlensError(
    'ERR_NATIVE_LOAD',
    `the native addon is not built (run 'npm ci' or 'npx node-gyp rebuild'); tried:\n  ${failures.join('\n  ')}`,
  );
}
