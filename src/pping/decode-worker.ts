/**
 * The reading thread of an offline pping run (see offline-feed.ts, reader-thread.ts): reads the capture file,
 * decodes every packet with the same Decoder as the one-thread path, and hands records over a slot
 * at a time. Errors travel as { code, message } on the setup's port, flagged in the slot after the
 * last good packet.
 */
import { parentPort } from 'node:worker_threads';
import { PathlensError } from '../core/errors.js';
import { Decoder, LINKTYPE_ETHERNET, PacketInfo, linktypeSupported } from './decode.js';
import { FeedViews, type FeedError, type FeedSetup, SLOTS, SLOT_RECORDS, STATUS_END, STATUS_ERROR, STATUS_MORE, WORKER_CHUNK } from './feed-ring.js';
import { CaptureReader, CaptureRecord } from './pcap.js';

const FIRST_RECORDS = 512;

function unsupported(path: string, linktype: number): PathlensError {
  return new PathlensError('ERR_PARSE', `${path}: link type ${linktype} is not supported (Ethernet, Linux cooked SLL/SLL2, raw IP, BSD loopback are)`);
}

function run(s: FeedSetup): void {
  const v = new FeedViews(s.ctl, s.ring);
  const fail = (e: unknown): void => {
    const m: FeedError = e instanceof PathlensError ? { code: e.code, message: e.message } : { code: null, message: e instanceof Error ? e.message : String(e) };
    s.port.postMessage(m);
  };
  let reader: CaptureReader;
  try {
    reader = CaptureReader.open(s.path, WORKER_CHUNK);
  } catch (e) {
    fail(e);
    v.waitFree(0);
    v.publish(0, 0, STATUS_ERROR);
    return;
  }
  try {
    decodeAll(s, v, reader, fail);
  } finally {
    reader.close();
  }
}

/** Decodes the file into the ring, a slot at a time. */
function decodeAll(s: FeedSetup, v: FeedViews, reader: CaptureReader, fail: (e: unknown) => void): void {
  const rec = new CaptureRecord();
  const dec = new Decoder();
  dec.dns = s.dns;
  dec.quicPorts = s.quicPorts;
  const info = new PacketInfo();
  // The first slot is handed over after a few records: the main thread is waiting for it.
  for (let slot = 0, size = FIRST_RECORDS; ; slot = (slot + 1) % SLOTS, size = SLOT_RECORDS) {
    v.waitFree(slot);
    let n = 0;
    let status = STATUS_MORE;
    try {
      for (; n < size; n++) {
        if (!reader.next(rec)) {
          status = STATUS_END;
          break;
        }
        if (!linktypeSupported(rec.linktype)) throw unsupported(s.path, rec.linktype);
        const b = FeedViews.base(slot, n);
        if (rec.linktype === LINKTYPE_ETHERNET && v.writeTcp4(b, rec.data, rec.off, rec.len, rec.sec, rec.nsec, rec.egress ?? false)) continue;
        const r = dec.decode(rec.data, rec.off, rec.len, rec.linktype, 0, info);
        if (r !== 0) v.writeSkip(b, rec.sec, rec.nsec, r);
        // Direction: pcapng's epb_flags, else a Linux cooked header's packet type, else unknown (ingress).
        else v.write(b, rec.sec, rec.nsec, rec.egress ?? info.linkOut === 1, info);
      }
    } catch (e) {
      fail(e);
      status = STATUS_ERROR;
    }
    v.publish(slot, n, status);
    if (status !== STATUS_MORE) return;
  }
}

// Started before its run is known (reader-thread.ts): it waits for the setup, reads, and ends.
parentPort!.once('message', (s: FeedSetup) => {
  run(s);
  parentPort!.close();
});
