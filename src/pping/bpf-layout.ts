/**
 * The layouts of bpf/pping.h as TypeScript sees them: offsets into ring-buffer records and map
 * entries, in host byte order. test/unit/bpf-layout.test.ts compares every offset and size here
 * with the BTF that clang wrote into bpf/obj/pping.bpf.o, so the two sides cannot drift apart.
 */
import { endianness } from 'node:os';

export const LE = endianness() === 'LE';

/** struct pping_flow_key */
export const FLOW_KEY = { size: 40, addr: 0, port: 32, proto: 36, family: 37 } as const;
/** struct pping_dir */
export const DIR = { size: 48, last_stamp: 0, min_rtt: 8, srtt: 16, last_id: 24, barrier: 28, outstanding: 32, state: 36, stamped: 37, open_reason: 38, has_barrier: 39, credits: 40 } as const;
/** struct pping_tally: by[k] has direction k's sent counters and direction k ^ 1's received ones. */
export const TALLY = { size: 64, sent_pkts: 0, sent_bytes: 8, rec_pkts: 16, rec_bytes: 24 } as const;
/** struct pping_flow */
export const FLOW = { size: 320, conn_id: 0, d: 8, by: 168, quic_cid_len: 296, quic_cid: 297 } as const;
/** struct pping_stamp_key / struct pping_stamp */
export const STAMP_KEY = { size: 12, conn_id: 0, dir: 4, id: 8 } as const;
export const STAMP = { size: 24, time: 0, deadline: 8, one_way: 16 } as const;
/** struct pping_config */
export const CONFIG = { size: 32, rate_limit_ns: 0, rtt_rate_milli: 8, flags: 12, one_way_limit: 16, burst: 20, quic_ports: 24 } as const;
/** struct pping_event */
export const EVENT = {
  size: 104,
  type: 0,
  family: 1,
  proto: 2,
  flags: 3,
  flow_event: 4,
  reason: 5,
  by: 6,
  match: 7,
  time: 8,
  saddr: 16,
  daddr: 32,
  sport: 48,
  dport: 50,
  rtt: 56,
  min_rtt: 64,
  sent_packets: 72,
  sent_bytes: 80,
  rec_packets: 88,
  rec_bytes: 96,
} as const;

export const CFG_TCP = 1 << 0;
export const CFG_ICMP = 1 << 1;
export const CFG_INCLUDE_SYN = 1 << 2;
export const CFG_INCLUDE_LOCAL = 1 << 3;
export const CFG_RTT_MIN = 1 << 4;
export const CFG_L3 = 1 << 5;
/** Time from skb->tstamp: for BPF_PROG_TEST_RUN replays only. */
export const CFG_TEST_CLOCK = 1 << 6;
/** TCP without the timestamp option: SEQ/ACK matching. */
export const CFG_SEQACK = 1 << 7;
/** DNS over UDP: query to response. */
export const CFG_DNS = 1 << 8;
/** QUIC's spin bit on the configured ports. */
export const CFG_QUIC = 1 << 9;

export const EV_RTT = 1;
export const EV_FLOW = 2;
export const FLOW_OPENING = 1;
export const FLOW_CLOSING = 2;
export const EVF_MATCH_ON_EGRESS = 1;
export const EVF_ONE_WAY = 2;
/** enum pping_dir_state */
export const DIR_WAITOPEN = 1;
export const DIR_OPEN = 2;
/** enum pping_by */
export const BY_DEST = 1;

/** enum pping_counter */
export const C = {
  SEEN: 0,
  CONSIDERED: 1,
  STAMPED: 2,
  RTTS: 3,
  FLOWS_OPENED: 4,
  FLOW_FULL: 5,
  STAMP_FULL: 6,
  EVENTS_LOST: 7,
  NOT_IP: 8,
  OTHER_PROTO: 9,
  MALFORMED: 10,
  FRAGMENT: 11,
  RETRANSMIT_SKIPPED: 12,
  ONE_WAY_REFUSED: 13,
  BURST: 14,
  ONE_WAY_FLOWS: 15,
  QUIC_MOVED: 16,
  NUM: 17,
} as const;

export { setU64, u64 } from '../bpf/maps.js';
