/**
 * Records seed inputs from a real lab (root): `node dist/fuzz/record.js OUTDIR`.
 *
 * Brings up `pathlens lab up mtu` (3 routers, a 1280-byte link after r2, a name server), then, in
 * the source namespace, sends what a trace sends and keeps what the kernel hands back:
 *  - UDP probes over IPv4 and IPv6 with TTLs 1..4, to a closed port, and one too large for the
 *    small link with DF set: each error-queue message's control bytes (errqueue, cmsg), its
 *    offender address (sockaddr);
 *  - the same errors on raw ICMP and ICMPv6 sockets: the whole messages (icmp-error, with the
 *    family byte in front; icmp-ext), the IPv4 packets (ip-header) and the headers they quote;
 *  - PTR answers from the lab's name server (dns).
 * Files go to OUTDIR/TARGET/rec-*; fuzz/seeds.ts copies them into fuzz/corpus/.
 */
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AF_INET,
  AF_INET6,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPV6_MTU_DISCOVER,
  IPV6_RECVERR,
  IPV6_UNICAST_HOPS,
  IP_MTU_DISCOVER,
  IP_PMTUDISC_DO,
  IP_RECVERR,
  IP_TTL,
  MSG_ERRQUEUE,
  SOCK_DGRAM,
  SOCK_RAW,
  SOL_SOCKET,
  SO_TIMESTAMPNS,
} from '../src/core/constants.js';
import { RecvBatch, SendBatch } from '../src/io/batch.js';
import { Socket } from '../src/io/socket.js';
import { parseIp, sockaddr } from '../src/packet/addr.js';
import { encodeQuery } from '../src/resolve/dns.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin', 'pathlens.js');
const LAB = 'fzrec';

function pathlens(args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pathlens ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

let count = 0;
function keep(out: string, target: string, bytes: Uint8Array): void {
  mkdirSync(join(out, target), { recursive: true });
  writeFileSync(join(out, target, `rec-${String(++count).padStart(3, '0')}`), bytes);
}

const withByte = (first: number, b: Uint8Array) => {
  const o = new Uint8Array(b.length + 1);
  o[0] = first;
  o.set(b, 1);
  return o;
};

async function inside(out: string, dst4: string, dst6: string, dns: string, names: string[]): Promise<void> {
  const raw4 = new Socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
  const raw6 = new Socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
  for (const [fam, dst] of [[4, dst4], [6, dst6]] as const) {
    const s = new Socket(fam === 4 ? AF_INET : AF_INET6, SOCK_DGRAM, 0);
    s.setInt(fam === 4 ? IPPROTO_IP : IPPROTO_IPV6, fam === 4 ? IP_RECVERR : IPV6_RECVERR, 1);
    s.setInt(SOL_SOCKET, SO_TIMESTAMPNS, 1);
    s.setInt(fam === 4 ? IPPROTO_IP : IPPROTO_IPV6, fam === 4 ? IP_MTU_DISCOVER : IPV6_MTU_DISCOVER, IP_PMTUDISC_DO);
    const to = sockaddr(parseIp(dst), 33434);
    const sb = new SendBatch(1, 1500, 28, 0);
    sb.names.set(to);
    sb.data.fill(0x5a);
    const send = (ttl: number, len: number) => {
      s.setInt(fam === 4 ? IPPROTO_IP : IPPROTO_IPV6, fam === 4 ? IP_TTL : IPV6_UNICAST_HOPS, ttl);
      sb.set(0, len, to.length, 0);
      sb.send(s.fd, 1);
    };
    for (let ttl = 1; ttl <= 5; ttl++) {
      send(ttl, 32);
      await sleep(60);
    }
    send(64, 1400);
    await sleep(100);
    send(64, 1400);
    await sleep(100);
    const batch = new RecvBatch(16, 2048, 512, 64);
    for (let k = 0; k < 4; k++) {
      const n = batch.recv(s.fd, MSG_ERRQUEUE);
      if (n <= 0) break;
      for (let i = 0; i < n; i++) {
        keep(out, 'errqueue', batch.ctrl.slice(batch.ctrlOff(i), batch.ctrlOff(i) + batch.ctrlLen(i)));
        keep(out, 'cmsg', batch.ctrl.slice(batch.ctrlOff(i), batch.ctrlOff(i) + batch.ctrlLen(i)));
        keep(out, 'sockaddr', batch.names.slice(batch.nameOff(i), batch.nameOff(i) + batch.nameLen(i)));
      }
    }
    s.close();
  }
  // The raw sockets have held a copy of every ICMP message that arrived meanwhile.
  const batch = new RecvBatch(32, 2048, 64, 64);
  for (const [fam, r] of [[4, raw4], [6, raw6]] as const) {
    for (let k = 0; k < 4; k++) {
      const n = batch.recv(r.fd, 0);
      if (n <= 0) break;
      for (let i = 0; i < n; i++) {
        const msg = batch.data.slice(batch.dataOff(i), batch.dataOff(i) + batch.dataLen(i));
        if (fam === 4) {
          const ihl = (msg[0] & 0x0f) * 4;
          keep(out, 'ip-header', withByte(0, msg));
          const icmp = msg.subarray(ihl);
          keep(out, 'icmp-error', withByte(0, icmp));
          keep(out, 'icmp-ext', withByte(0, icmp));
          if (icmp.length > 8) keep(out, 'ip-header', withByte(1, icmp.subarray(8)));
        } else {
          keep(out, 'icmp-error', withByte(1, msg));
          keep(out, 'icmp-ext', withByte(1, msg));
          if (msg.length > 8) keep(out, 'ip-header', withByte(1, msg.subarray(8)));
        }
      }
    }
    r.close();
  }
  // PTR answers from the lab's name server.
  const sock = createSocket(dns.includes(':') ? 'udp6' : 'udp4');
  const answers: Buffer[] = [];
  sock.on('message', (m) => answers.push(m));
  await new Promise<void>((res) => sock.bind(0, res));
  const q = new Uint8Array(512);
  names.forEach((name, i) => {
    const n = encodeQuery(q, 0x100 + i, name);
    sock.send(q.subarray(0, n), 53, dns);
  });
  await sleep(300);
  sock.close();
  for (const a of answers) keep(out, 'dns', new Uint8Array(a));
  process.stdout.write(`${count} seeds\n`);
}

function reverseName(addr: string): string {
  if (!addr.includes(':')) return `${addr.split('.').reverse().join('.')}.in-addr.arpa`;
  const b = parseIp(addr);
  const nibbles: string[] = [];
  for (let i = 15; i >= 0; i--) nibbles.push((b[i] & 15).toString(16), (b[i] >> 4).toString(16));
  return `${nibbles.join('.')}.ip6.arpa`;
}

async function main(): Promise<void> {
  const [mode, out, ...rest] = process.argv.slice(2);
  if (mode === '--inside') return inside(out, rest[0], rest[1], rest[2], rest.slice(3));
  if (!mode || mode.startsWith('-')) {
    process.stderr.write('usage: node dist/fuzz/record.js OUTDIR (as root)\n');
    process.exit(2);
  }
  spawnSync(process.execPath, [CLI, 'lab', 'down', LAB]);
  pathlens(['lab', 'up', 'mtu', '--name', LAB, '--routers', '3', '--mtu', '1280', '--at', '2', '--dns']);
  try {
    const state = JSON.parse(pathlens(['lab', 'show', LAB, '--json'])) as { dns?: { server: string } | null };
    const addr = (node: string, six: boolean) => pathlens(['lab', 'addr', node, '--lab', LAB, ...(six ? ['-6'] : [])]);
    const dst4 = addr('dst', false);
    const dst6 = addr('dst', true);
    const routers = ['r1', 'r2', 'r3'].flatMap((r) => [addr(r, false), addr(r, true)]);
    if (!state.dns) throw new Error('the lab has no name server');
    const dns = state.dns.server;
    const r = spawnSync(process.execPath, [CLI, 'lab', 'exec', '--lab', LAB, 'src', '--', process.execPath, fileURLToPath(import.meta.url), '--inside', mode, dst4, dst6, dns, ...routers.map(reverseName), reverseName(dst4)], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('recording in the lab failed');
  } finally {
    pathlens(['lab', 'down', LAB]);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`record: ${(e as Error).message}\n`);
  process.exit(1);
});
