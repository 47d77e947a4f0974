/**
 * Replies a trace must not take at face value, made by a raw-socket responder in the target's
 * namespace (the kernel's own answers there are switched off):
 *  - echo replies without the payload: a real echo returns it whole, so without the cookie they
 *    are not ours, whatever their id and sequence (ping socket unprivileged, raw socket as root);
 *  - Port Unreachable quoting only the IP header and 8 bytes (as old routers do): too short to
 *    carry the cookie, so matched on the ports alone, counted, and marked unverified in the events
 *    and with '?' in the human view.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { chain } from '../../src/lab/presets.js';
import type { DoneEvent, HopEvent, ReplyEvent } from '../../src/trace/events.js';
import { CLI, addrOf, labName, nodeNs, runIn, trace, withLab } from '../helpers/lab.js';
import { rootOnly } from '../helpers/root.js';

const opt = rootOnly();
const NOBODY = 65534;

const RESPONDER = String.raw`
import socket, struct, sys
mode = sys.argv[1]
ic = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
def send(m, to):
    m = m[:2] + struct.pack('!H', csum(m)) + m[4:]
    ic.sendto(m, (to, 0))
src = ic if mode == 'empty-echo' else socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
print('ready', flush=True)
while True:
    pkt, addr = src.recvfrom(65535)
    ihl = (pkt[0] & 15) * 4
    if mode == 'empty-echo':
        if pkt[ihl] != 8: continue
        ident, seq = struct.unpack('!HH', pkt[ihl + 4:ihl + 8])
        send(struct.pack('!BBHHH', 0, 0, 0, ident, seq), addr[0])
    else:
        send(struct.pack('!BBHI', 3, 3, 0, 0) + pkt[:ihl + 8], addr[0])
`;

async function withResponder<T>(ns: string, mode: 'empty-echo' | 'short-quote', fn: () => Promise<T>): Promise<T> {
  const p = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', RESPONDER, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((res, rej) => {
      p.stdout.on('data', (d) => String(d).includes('ready') && res());
      p.on('exit', (c) => rej(new Error(`responder exited ${c}`)));
    });
    return await fn();
  } finally {
    p.kill();
  }
}

test('forged and short replies: payload-less echo replies are never attributed; 8-byte quotes count but are marked unverified', opt, async () => {
  await withLab(chain({ name: labName('fg'), routers: 1 }), async (st) => {
    const dst = addrOf(st, 'dst', 4);
    const dstNs = nodeNs(st, 'dst');
    // The kernel in dst stays silent: no echo replies, and its Port Unreachables are rate limited
    // to one per destination per 11.5 days (only the responder answers).
    const sys = await runIn(dstNs, ['sysctl', '-q', '-w', 'net.ipv4.icmp_echo_ignore_all=1', 'net.ipv4.icmp_ratelimit=1000000000', `net.ipv4.icmp_ratemask=${1 << 3}`]);
    assert.equal(sys.code, 0, sys.stderr);

    await withResponder(dstNs, 'empty-echo', async () => {
      for (const [how, args, uid] of [
        ['ping socket', ['-I'], NOBODY],
        ['raw socket', ['-I', '--raw'], undefined],
      ] as const) {
        const { events } = await trace(st, 'src', dst, ['-q', '3', '-m', '2', '-w', '0.5', ...args], uid);
        const counted = events.filter((e): e is ReplyEvent => e.type === 'reply' && e.addr === dst);
        assert.deepEqual(counted, [], `${how}: no echo reply without the cookie is taken as an answer`);
        const forged = events.filter((e) => e.type === 'unmatched' && e.reason === 'cookie-mismatch');
        assert.equal(forged.length, 3, `${how}: each payload-less reply is reported as unmatched`);
        const hop2 = events.find((e): e is HopEvent => e.type === 'hop' && e.ttl === 2)!;
        assert.deepEqual([hop2.replies.length, hop2.no_reply], [0, 3], `${how}: the target's hop is three explicit no-replies`);
        const done = events.at(-1) as DoneEvent;
        assert.notEqual(done.reason, 'reached', how);
      }
    });

    await withResponder(dstNs, 'short-quote', async () => {
      const { events } = await trace(st, 'src', dst, ['-q', '3', '-m', '2']);
      const fromDst = events.filter((e): e is ReplyEvent => e.type === 'reply' && e.addr === dst);
      assert.equal(fromDst.length, 3);
      assert.ok(fromDst.every((r) => r.kind === 'unreachable' && r.code === 'port' && r.unverified === true), JSON.stringify(fromDst));
      const hop1 = events.filter((e): e is ReplyEvent => e.type === 'reply' && e.ttl === 1);
      assert.ok(hop1.length === 3 && hop1.every((r) => r.unverified === undefined), 'a full quote carries the cookie: verified');
      const hop2 = events.find((e): e is HopEvent => e.type === 'hop' && e.ttl === 2)!;
      assert.ok(hop2.replies.every((r) => r.unverified === true));
      assert.equal((events.at(-1) as DoneEvent).reason, 'reached', 'real routers send short quotes: they still count');
      const text = await runIn(nodeNs(st, 'src'), [process.execPath, CLI, 'trace', '-n', '-q', '3', '-m', '2', dst]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, new RegExp(` 2  ${dst.replace(/\./g, '\\.')}  (\\d+\\.\\d+ ms \\?  ){2}\\d+\\.\\d+ ms \\?\\n`), text.stdout);
    });
  });
});
