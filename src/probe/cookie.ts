/**
 * The probe cookie: one layout for every probe pathlens sends, in its payload (docs/correlation.md).
 *
 *   offset 0  magic   'PLN1' (big-endian u32)
 *          4  session  random per run: tells runs (and processes) apart
 *          8  seq      the probe's sequence number within its target
 *         12  target   the target's index (probes to many targets from one socket: the monitor)
 *
 * A trace has one target and carries the first 12 bytes (routers that quote 28 or 48 bytes of the
 * probe then still return all of it); the monitor carries all 16. What is quoted back is compared
 * word by word, without copies.
 */
export const COOKIE_MAGIC = 0x504c4e31; // 'PLN1'
/** The cookie of a probe to one target: magic, session, seq. */
export const COOKIE_LEN = 12;
/** The cookie with the target's index. */
export const COOKIE_TARGET_LEN = 16;

/** Writes magic and session (the part that is the same for every probe of a run). */
export function writeCookieHead(dv: DataView, off: number, session: number): void {
  dv.setUint32(off, COOKIE_MAGIC, false);
  dv.setUint32(off + 4, session >>> 0, false);
}

/** Writes a whole cookie; `target` < 0 writes the 12-byte form. */
export function writeCookie(dv: DataView, off: number, session: number, seq: number, target: number): void {
  writeCookieHead(dv, off, session);
  dv.setUint32(off + 8, seq >>> 0, false);
  if (target >= 0) dv.setUint32(off + 12, target >>> 0, false);
}

/** Whether `avail` bytes at dv[off] start with this run's magic and session (the quote holds a cookie of ours). */
export function isOurCookie(dv: DataView, off: number, avail: number, session: number, len = COOKIE_LEN): boolean {
  return avail >= len && dv.getUint32(off, false) === COOKIE_MAGIC && dv.getUint32(off + 4, false) === session >>> 0;
}

/** The cookie's seq (after isOurCookie). */
export function cookieSeq(dv: DataView, off: number): number {
  return dv.getUint32(off + 8, false);
}

/** The cookie's target index (after isOurCookie with COOKIE_TARGET_LEN). */
export function cookieTarget(dv: DataView, off: number): number {
  return dv.getUint32(off + 12, false);
}
