/**
 * ICMP echo at a fixed rate through an unprivileged ping socket (the lab allows them), with RTTs
 * from kernel receive timestamps against the send time carried in each request. Prints a JSON
 * summary. Used by the lab's accuracy tests; run inside a lab namespace:
 *   node echo.js TARGET COUNT RATE_PPS
 */
import { AF_INET, AF_INET6, IPPROTO_ICMP, IPPROTO_ICMPV6, SOCK_DGRAM, SOL_SOCKET, SO_RCVBUF, SO_TIMESTAMPNS } from '../../src/core/constants.js';
import { RecvBatch, SendBatch } from '../../src/io/batch.js';
import { Socket } from '../../src/io/socket.js';
import { parseIp, writeSockaddr } from '../../src/packet/addr.js';
import { CmsgCursor } from '../../src/packet/cmsg.js';
import { ErrqueueRecord, parseErrqueue } from '../../src/packet/errqueue.js';
import { diffMs, realtime } from '../../src/time/clock.js';

const [target, countArg, rateArg] = process.argv.slice(2);
const addr = parseIp(target);
const v6 = addr.length === 16;
const count = Number(countArg);
const rate = Number(rateArg);
const sock = new Socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
sock.setInt(SOL_SOCKET, SO_TIMESTAMPNS, 1);
sock.trySetInt(SOL_SOCKET, SO_RCVBUF, 4 << 20);
const send = new SendBatch(1, 32, 28, 0);
const nameLen = writeSockaddr(send.names, 0, addr, 0);
const recv = new RecvBatch(64, 64, 64, 32);
const eq = new ErrqueueRecord();
const cur = new CmsgCursor();
const rtts: number[] = [];
const seen = new Uint8Array(count);
let duplicates = 0;
let sent = 0;
const now = new Float64Array(2);

sock.watch(
  () => {
    let n = 0;
    for (;;) {
      const k = recv.recv(sock.fd, 0);
      if (k <= 0) break;
      for (let i = 0; i < k; i++) {
        const off = recv.dataOff(i);
        const dv = recv.dataView;
        if (recv.dataLen(i) < 24 || recv.data[off] !== (v6 ? 129 : 0)) continue;
        const seq = dv.getUint16(off + 6, false);
        parseErrqueue(recv.ctrlView, recv.ctrlOff(i), recv.ctrlOff(i) + recv.ctrlLen(i), eq, cur);
        if (!eq.hasTime) realtime(now);
        const rx = eq.hasTime ? [eq.sec, eq.nsec] : [now[0], now[1]];
        const sec = dv.getFloat64(off + 8, true);
        const nsec = dv.getFloat64(off + 16, true);
        if (seq >= count) continue;
        if (seen[seq]) {
          duplicates++;
          continue;
        }
        seen[seq] = 1;
        rtts.push(diffMs(sec, nsec, rx[0], rx[1]));
      }
      n += k;
    }
    return n;
  },
  (e) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  },
);

const start = performance.now();
function tick(): void {
  const due = Math.min(count, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
  while (sent < due) {
    const dv = send.dataView;
    dv.setUint8(0, v6 ? 128 : 8);
    dv.setUint8(1, 0);
    dv.setUint16(2, 0);
    dv.setUint16(4, 0); // the kernel sets the id of a ping socket
    dv.setUint16(6, sent, false);
    realtime(now);
    dv.setFloat64(8, now[0], true);
    dv.setFloat64(16, now[1], true);
    send.set(0, 32, nameLen, 0);
    if (send.send(sock.fd, 1) === 1) sent++;
    else break;
  }
  if (sent < count) setTimeout(tick, 1);
  else setTimeout(finish, 300);
}

function finish(): void {
  sock.close();
  const s = [...rtts].sort((a, b) => a - b);
  const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : null);
  const seconds = (performance.now() - start) / 1000;
  process.stdout.write(`${JSON.stringify({ sent, received: s.length, duplicates, min: q(0), p1: q(0.01), p50: q(0.5), p99: q(0.99), max: q(1), pps: sent / seconds })}\n`);
}

tick();
