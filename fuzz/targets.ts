/**
 * Every parser of bytes pathlens does not control, as a fuzz target: what the kernel hands back
 * from a network anyone can write to (error-queue records and their control messages, ICMP errors
 * and their quotes, RFC 4884 extensions, TCP headers, captured frames), files users hand in
 * (pcap/pcapng captures, monitor target files, lab specs, web configuration files), DNS answers,
 * netlink replies and the records BPF programs write into ring buffers.
 *
 * A target runs one input and checks what the parser promises beyond "no exception": statuses
 * from the defined set, offsets inside the input, counts that cannot exceed what the input holds.
 * Where a target needs a choice besides the bytes (an address family, a link type, a sequence
 * number), the input's first byte makes it, so the fuzzer explores both.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Target } from './engine.js';

/** Files for the targets that read a path (one per thread: each worker has its own). */
function scratchFile(ext: string): string {
  return join(tmpdir(), `pathlens-fuzz-${process.pid}-${Math.random().toString(36).slice(2)}${ext}`);
}

const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

export const TARGETS: Target[] = [
  {
    name: 'cmsg',
    what: 'control messages (struct cmsghdr walk, timestamps)',
    maxLen: 512,
    async make() {
      const { CmsgCursor, readTimestampNs } = await import('../src/packet/cmsg.js');
      const { describeStatus } = await import('../src/packet/status.js');
      const c = new CmsgCursor();
      const ts = { sec: 0, nsec: 0 };
      return (b) => {
        const v = dv(b);
        c.reset(v, 0, b.length);
        let n = 0;
        while (c.next()) {
          assert.ok(c.dataOff >= 0 && c.dataOff + c.dataLen <= b.length, 'cmsg data outside the buffer');
          assert.ok(++n <= b.length, 'more messages than bytes');
        }
        assert.ok(!describeStatus(c.status).startsWith('status-'), `undefined status ${c.status}`);
        if (readTimestampNs(c, v, 0, b.length, ts)) assert.ok(Number.isFinite(ts.sec) && ts.nsec >= 0, 'timestamp');
      };
    },
  },
  {
    name: 'errqueue',
    what: 'error-queue records (IP_RECVERR/IPV6_RECVERR control messages)',
    maxLen: 512,
    async make() {
      const { CmsgCursor } = await import('../src/packet/cmsg.js');
      const { ErrqueueRecord, parseErrqueue } = await import('../src/packet/errqueue.js');
      const { describeStatus } = await import('../src/packet/status.js');
      const rec = new ErrqueueRecord();
      const cur = new CmsgCursor();
      return (b) => {
        const st = parseErrqueue(dv(b), 0, b.length, rec, cur);
        assert.ok(!describeStatus(st).startsWith('status-'), `undefined status ${st}`);
        if (rec.offender.family) assert.ok(rec.offender.addrOff + (rec.offender.family === 4 ? 4 : 16) <= b.length, 'offender outside the buffer');
      };
    },
  },
  {
    name: 'icmp-error',
    what: 'ICMP/ICMPv6 errors and the packets they quote (first byte: family)',
    maxLen: 1500,
    async make() {
      const { IcmpErrorView, parseIcmpError } = await import('../src/packet/icmp.js');
      const { describeStatus } = await import('../src/packet/status.js');
      const v = new IcmpErrorView();
      return (b) => {
        if (b.length === 0) return;
        const fam = b[0] & 1 ? 6 : 4;
        const len = b.length - 1;
        const st = parseIcmpError(b, dv(b), 1, len, fam, v);
        assert.ok(!describeStatus(st).startsWith('status-'), `undefined status ${st}`);
        if (st === 0) {
          assert.ok(v.inner.payloadOff <= 1 + len, 'quote payload outside the packet');
          if (v.innerPayloadLen > 0) assert.ok(v.innerPayloadOff >= 1 && v.innerPayloadOff + v.innerPayloadLen <= 1 + len, 'quoted transport outside the packet');
        }
      };
    },
  },
  {
    name: 'ip-header',
    what: 'IPv4/IPv6 headers, whole or quoted (first byte: quoted)',
    maxLen: 1500,
    async make() {
      const { IpView, parseIpHeader } = await import('../src/packet/ip.js');
      const { describeStatus } = await import('../src/packet/status.js');
      const v = new IpView();
      return (b) => {
        if (b.length === 0) return;
        const st = parseIpHeader(b, 1, b.length - 1, v, (b[0] & 1) === 1);
        assert.ok(!describeStatus(st).startsWith('status-'), `undefined status ${st}`);
        if (st === 0) assert.ok(v.payloadOff >= 1 && v.payloadOff + v.payloadLen <= b.length, 'payload outside the buffer');
      };
    },
  },
  {
    name: 'icmp-ext',
    what: 'RFC 4884 extension structures (MPLS labels, interface information; first byte: family)',
    maxLen: 1024,
    async make() {
      const { IcmpExtView, findIcmpExtensions, parseIcmpExtensions } = await import('../src/packet/icmpext.js');
      const { describeStatus } = await import('../src/packet/status.js');
      const v = new IcmpExtView();
      return (b) => {
        if (b.length === 0) return;
        const fam = b[0] & 1 ? 6 : 4;
        const check = (s: number) => {
          assert.ok(!describeStatus(s).startsWith('status-'), `undefined status ${s}`);
          if (s !== 0) assert.equal(v.labels(), null, 'labels survive a failed parse');
          assert.ok(v.nLabels <= 16, 'more than 16 labels');
        };
        check(parseIcmpExtensions(b, 1, b.length - 1, v));
        check(findIcmpExtensions(b, 1, b.length - 1, fam, v));
      };
    },
  },
  {
    name: 'tcp-header',
    what: 'TCP headers and options, whole or quoted (first byte: quoted)',
    maxLen: 256,
    async make() {
      const { TcpView, parseTcpHeader } = await import('../src/packet/tcp.js');
      const { describeStatus } = await import('../src/packet/status.js');
      const v = new TcpView();
      return (b) => {
        if (b.length === 0) return;
        const st = parseTcpHeader(b, 1, b.length - 1, v, (b[0] & 1) === 1);
        assert.ok(!describeStatus(st).startsWith('status-'), `undefined status ${st}`);
        if (st === 0 && v.headerLen > 0) assert.equal(1 + v.headerLen + v.payloadLen, b.length, 'header and payload do not add up to the segment');
      };
    },
  },
  {
    name: 'sockaddr',
    what: 'socket addresses the kernel returns (msg_name, the offender)',
    maxLen: 128,
    async make() {
      const { SockaddrView, readSockaddr } = await import('../src/packet/addr.js');
      const { describeStatus } = await import('../src/packet/status.js');
      const v = new SockaddrView();
      return (b) => {
        const st = readSockaddr(dv(b), 0, b.length, v);
        assert.ok(!describeStatus(st).startsWith('status-'), `undefined status ${st}`);
      };
    },
  },
  {
    name: 'frame',
    what: 'captured frames for pping, every link type (first two bytes: link type, ethertype)',
    maxLen: 1600,
    async make() {
      const { Decoder, L3_ETHERTYPE, PacketInfo } = await import('../src/pping/decode.js');
      const LINKS = [0, 1, 101, 113, 228, 229, 276, L3_ETHERTYPE, 14, 999];
      const ETHERTYPES = [0x0800, 0x86dd, 0x8100, 0x88a8, 0];
      const dec = new Decoder();
      dec.dns = true; // DNS over UDP too: its question is walked label by label
      const info = new PacketInfo();
      return (b) => {
        if (b.length < 2) return;
        const r = dec.decode(b, 2, b.length - 2, LINKS[b[0] % LINKS.length], ETHERTYPES[b[1] % ETHERTYPES.length], info);
        if (r === 0) assert.ok(info.srcOff >= 2 && info.dstOff + (info.family === 4 ? 4 : 16) <= b.length, 'addresses outside the frame');
      };
    },
  },
  {
    name: 'capture',
    what: 'pcap and pcapng files',
    maxLen: 16384,
    async make() {
      const { CaptureReader, CaptureRecord } = await import('../src/pping/pcap.js');
      const rec = new CaptureRecord();
      return (b) => {
        const r = CaptureReader.fromBytes('input.pcap', b);
        let n = 0;
        while (r.next(rec)) {
          assert.ok(rec.off >= 0 && rec.off + rec.len <= rec.data.length, 'record outside its data');
          assert.ok(Number.isFinite(rec.sec) && rec.nsec >= 0 && rec.nsec < 1e9, `time ${rec.sec}.${rec.nsec}`);
          assert.ok(++n <= b.length, 'more records than bytes');
        }
        r.close();
      };
    },
  },
  {
    name: 'dns',
    what: 'DNS answers (the resolver of hop names)',
    maxLen: 1232,
    async make() {
      const { parseMessage, ptrAnswer, readName } = await import('../src/resolve/dns.js');
      return (b) => {
        const m = parseMessage(b);
        if ('error' in m) {
          assert.equal(typeof m.error, 'string');
        } else {
          for (const a of m.answers) {
            for (const t of [a.name, a.target]) if (t !== null) assert.match(t, /^[A-Za-z0-9_\-.\\]*$/, 'unprintable name');
            assert.ok(a.ttl >= 0 && a.ttl <= 0x7fffffff, 'ttl');
          }
          if (m.question) ptrAnswer(m, m.id, m.question.name);
        }
        if (b.length > 12) {
          const r = readName(b, 12, b.length);
          if (typeof r !== 'string') assert.ok(r[1] > 12 && r[1] <= b.length, 'name ends outside the message');
        }
      };
    },
  },
  {
    name: 'xsk-match',
    what: 'frames handed over by the --xdp program (first byte: the family and the filter; the rest: an Ethernet frame)',
    maxLen: 512,
    async make() {
      const { quotesProbe } = await import('../src/probe/xsk-match.js');
      return (input) => {
        if (input.length === 0) return;
        const family = input[0] & 1 ? 6 : 4;
        const f = { family, sport: 40000, dportLo: 33434, dportHi: 33434 + (input[0] >> 1) } as const;
        const b = input.subarray(1);
        const r = quotesProbe(b, 0, b.length, f);
        assert.equal(typeof r, 'boolean');
        assert.equal(quotesProbe(b, 0, b.length + 64, f), r, 'a length past the buffer is cut to it');
        if (r) assert.ok(b.length >= 14 + (family === 4 ? 20 + 8 + 20 : 40 + 8 + 40) + 4, 'taken, so the quote holds the ports');
      };
    },
  },
  {
    name: 'netlink',
    what: 'rtnetlink and generic netlink replies (first byte: the sequence number expected)',
    maxLen: 4096,
    async make() {
      const { parseLinkAddressReply, parseLinkReply, parseLinkTypeReply, parseNeighReply, parseRouteReply } = await import('../src/packet/netlink.js');
      const { parseFamilyId, parseTsinfo } = await import('../src/packet/genetlink.js');
      return (input) => {
        if (input.length === 0) return;
        const seq = input[0] & 7;
        const b = input.subarray(1);
        for (const r of [parseRouteReply(b, b.length, seq), parseLinkReply(b, b.length, seq), parseLinkTypeReply(b, b.length, seq), parseLinkAddressReply(b, b.length, seq), parseNeighReply(b, b.length, seq), parseFamilyId(b, b.length, seq), parseTsinfo(b, b.length, seq)]) {
          assert.ok('ok' in r || ('errno' in r && Number.isInteger(r.errno)) || ('error' in r && typeof r.error === 'string'), 'neither an answer, an errno nor an error');
          if ('ok' in r && typeof r.ok === 'object' && 'nexthops' in r.ok) assert.ok(r.ok.nexthops >= 0);
          if ('ok' in r && typeof r.ok === 'number') assert.ok(r.ok >= 0 && r.ok <= 0xffff);
          if ('ok' in r && typeof r.ok === 'string') assert.match(r.ok, /^[!-~]*$/);
        }
      };
    },
  },
  {
    name: 'ktrace-record',
    what: "ktrace's ring-buffer records (struct kt_record; first byte: TX or RX trips, or UDP/TCP packets)",
    maxLen: 1024,
    async make() {
      const { TripDecoder } = await import('../src/ktrace/records.js');
      const { pathOrder } = await import('../src/ktrace/stages.js');
      const shape = (rx: boolean) => {
        const m = pathOrder(rx);
        return { rx, measured: m, hookOf: new Map(m.map((s) => [s.id, `hook-${s.name}`])), firstPath: m.filter((s) => s.path === (rx ? 'in' : 'out')), secondPath: m.filter((s) => s.path === (rx ? 'out' : 'in')) };
      };
      const decoders = [new TripDecoder(shape(false), null, new Map([[2, 'NOT_SPECIFIED']])), new TripDecoder(shape(true), null, new Map())];
      // Packet mode: the transport profile's stages, UDP and TCP, IPv4 and IPv6.
      const { loadProfile } = await import('../src/ktrace/profile.js');
      const transport = pathOrder(false, loadProfile('transport').stages);
      const packet = (proto: 'udp' | 'tcp', family: 4 | 6) =>
        new TripDecoder({ ...shape(false), measured: transport, hookOf: new Map(transport.map((s) => [s.id, `hook-${s.name}`])), proto, family }, null, new Map([[5, 'NETFILTER_DROP']]));
      const packets = [packet('udp', 4), packet('tcp', 6)];
      return (b) => {
        if (b.length === 0) return;
        if (b[0] & 2) {
          const p = packets[b[0] & 1].packetRecord(dv(b), 1, b.length - 1, 1);
          if (p) {
            assert.ok(p.stages.every((s) => Number.isFinite(s.t_ns)) && p.sport <= 65535 && p.dport <= 65535, 'packet fields out of range');
            JSON.stringify(p);
          }
          return;
        }
        const e = decoders[b[0] & 1].rtt(dv(b), b, 1, b.length - 1, 1);
        if (e) {
          // Times are the kernel's as written (a forged record may go backwards): finite is the promise.
          assert.ok(e.stages.every((s) => Number.isFinite(s.t_ns)), 'stage time not finite');
          JSON.stringify(e);
        }
      };
    },
  },
  {
    name: 'pping-record',
    what: "pping's ring-buffer events (struct of bpf/pping.h)",
    maxLen: 256,
    async make() {
      const { recordToEvent } = await import('../src/pping/bpf-run.js');
      const clock = { epoch: (t: number, out: { sec: number; nsec: number }) => ((out.sec = Math.floor(t / 1e9)), (out.nsec = t % 1e9)) };
      const t = { sec: 0, nsec: 0 };
      return (b) => {
        const e = recordToEvent(dv(b), b, 0, b.length, clock as never, t);
        if (e) JSON.stringify(e);
      };
    },
  },
  {
    name: 'monitor-targets',
    what: "monitor's target files (JSON or YAML)",
    maxLen: 4096,
    async make() {
      const { eachTargetInFile } = await import('../src/monitor/config.js');
      const { MONITOR_DEFAULTS } = await import('../src/monitor/request.js');
      const file = scratchFile('.yaml');
      const base = { method: 'auto' as const, intervalMs: MONITOR_DEFAULTS.intervalMs, udpPort: MONITOR_DEFAULTS.udpPort, tcpPort: MONITOR_DEFAULTS.tcpPort, thresholds: MONITOR_DEFAULTS.thresholds, placement: {} };
      return async (b) => {
        writeFileSync(file, b);
        let n = 0;
        await eachTargetInFile(file, base, (target, s) => {
          assert.equal(typeof target, 'string');
          assert.ok(s.intervalMs > 0, 'interval');
          n++;
        });
        assert.ok(n <= b.length, 'more targets than bytes');
      };
    },
  },
  {
    name: 'lab-spec',
    what: 'lab specs (YAML)',
    maxLen: 4096,
    async make() {
      const { readSpecFile } = await import('../src/lab/spec.js');
      const file = scratchFile('.yaml');
      return async (b) => {
        writeFileSync(file, b);
        await readSpecFile(file);
      };
    },
  },
  {
    name: 'web-config',
    what: 'web configuration files (--web.config.file)',
    maxLen: 4096,
    async make() {
      const { readWebConfig } = await import('../src/export/web-config.js');
      const file = scratchFile('.yml');
      return async (b) => {
        writeFileSync(file, b);
        await readWebConfig(file);
      };
    },
  },
];
