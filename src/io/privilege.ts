/**
 * Dropping root (`--user NAME`, and by default to the invoking user under sudo), as tcpdump's -Z
 * does, keeping only the Linux capabilities the run needs, as a capability-limited mtr-packet
 * has them: from then on the process's uid is the user's, nothing it reads from the network is
 * parsed as root, and a hook it runs (monitor --on-change) or a file it writes belongs to the
 * user.
 *
 * The sequence: no new privileges for anything executed later (setuid binaries included); every
 * capability not kept leaves the bounding set; PR_SET_KEEPCAPS on the main thread; supplementary
 * groups, gid and uid set (glibc sets them on every thread); then the main thread's permitted and
 * effective sets become exactly the kept ones (Node's other threads hold none: they open no
 * socket). Checked afterwards: the uid and gid are the user's, and setuid(0) fails.
 */
import { childProcess } from '../core/builtins.js';
import { native } from '../native/index.js';
import { CAPS, type CapName, effectiveCaps, listCaps } from '../core/caps.js';
import { PathlensError } from '../core/errors.js';

const PR_CAPBSET_DROP = 24;
const PR_SET_KEEPCAPS = 8;
const PR_SET_NO_NEW_PRIVS = 38;
/** Capabilities the running kernel may know (CAP_LAST_CAP is 40 in Linux 6.x). */
const CAP_COUNT = 64;

export interface RunAs {
  /** As given (a name, or a uid). */
  name: string;
  uid: number;
  gid: number;
}

/** A user by name or number, as `id` finds it (the system's user database, NSS included). */
export function lookupUser(spec: string): RunAs {
  const id = (flag: string) => {
    const r = childProcess().spawnSync('id', [flag, spec], { encoding: 'utf8' });
    const n = Number(r.stdout.trim());
    if (r.status !== 0 || !Number.isInteger(n)) throw new PathlensError('ERR_USAGE', `--user ${spec}: no such user`);
    return n;
  };
  return { name: spec, uid: id('-u'), gid: id('-g') };
}

/**
 * Who the run should become: --user when given ('root' or 0: stay), else the user sudo was
 * started by (SUDO_UID, SUDO_GID) when running as root under it, else nobody (null: no drop).
 */
export function runAsFor(option: string | undefined, env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? -1): RunAs | null {
  if (option !== undefined) {
    const u = lookupUser(option);
    if (u.uid === uid) return null;
    if (uid !== 0) throw new PathlensError('ERR_USAGE', `--user ${option}: only root can become another user (this process runs as uid ${uid})`);
    return u.uid === 0 ? null : u;
  }
  if (uid !== 0 || !env.SUDO_UID) return null;
  const u = Number(env.SUDO_UID);
  const g = Number(env.SUDO_GID ?? env.SUDO_UID);
  if (!Number.isInteger(u) || !Number.isInteger(g) || u === 0) return null;
  return { name: env.SUDO_USER ?? String(u), uid: u, gid: g };
}

/**
 * Becomes `to`, keeping `keep` (those of them the process holds: a missing one is refused later,
 * by name, where it is needed). Throws a PathlensError when a step is refused.
 */
export function dropPrivileges(to: RunAs, keep: CapName[]): void {
  const n = native();
  const held = effectiveCaps() ?? 0n;
  let mask = 0n;
  for (const c of keep) if ((held >> BigInt(CAPS[c])) & 1n) mask |= 1n << BigInt(CAPS[c]);
  const fail = (what: string, rc: number) => {
    throw new PathlensError('ERR_PRIVILEGE', `cannot become ${to.name}: ${what} failed (errno ${-rc})`);
  };
  let rc = n.prctl(PR_SET_NO_NEW_PRIVS, 1);
  if (rc < 0) fail('PR_SET_NO_NEW_PRIVS', rc);
  for (let c = 0; c < CAP_COUNT; c++) {
    if ((mask >> BigInt(c)) & 1n) continue;
    rc = n.prctl(PR_CAPBSET_DROP, c);
    if (rc < 0 && rc !== -22 /* EINVAL: the kernel has no such capability */) fail(`dropping capability ${c} from the bounding set`, rc);
  }
  rc = n.prctl(PR_SET_KEEPCAPS, 1);
  if (rc < 0) fail('PR_SET_KEEPCAPS', rc);
  try {
    process.setgroups!([to.gid]);
    process.setgid!(to.gid);
    process.setuid!(to.uid);
  } catch (e) {
    throw new PathlensError('ERR_PRIVILEGE', `cannot become ${to.name}: ${(e as Error).message}`);
  }
  rc = n.capset(Number(mask & 0xffffffffn) | 0, Number(mask >> 32n) | 0);
  if (rc < 0) fail('capset', rc);
  n.prctl(PR_SET_KEEPCAPS, 0);
  let regained = true;
  try {
    process.setuid!(0);
  } catch {
    regained = false;
  }
  if (regained || process.getuid?.() !== to.uid || process.geteuid?.() !== to.uid || process.getgid?.() !== to.gid) {
    throw new PathlensError('ERR_PRIVILEGE', `cannot become ${to.name}: the process still holds root`);
  }
}

/** "as alice (uid 1000) with CAP_NET_RAW" for a start line or the docs' examples. */
export function describeDrop(to: RunAs, keep: CapName[]): string {
  return `as ${to.name} (uid ${to.uid})${keep.length ? ` with ${listCaps(keep)}` : ' with no capabilities'}`;
}
