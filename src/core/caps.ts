/**
 * The process's effective Linux capabilities (/proc/self/status, CapEff), so that a refusal can
 * name the capability that is missing instead of saying "needs root".
 */
import { readFileSync } from 'node:fs';

/** The capabilities pathlens asks for, by their number (linux/capability.h). */
export const CAPS = { CAP_DAC_READ_SEARCH: 2, CAP_NET_ADMIN: 12, CAP_NET_RAW: 13, CAP_SYS_ADMIN: 21, CAP_SYSLOG: 34, CAP_PERFMON: 38, CAP_BPF: 39 } as const;
export type CapName = keyof typeof CAPS;

/** The effective set, or null when it cannot be read. */
export function effectiveCaps(status = (): string => readFileSync('/proc/self/status', 'utf8')): bigint | null {
  try {
    const m = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(status());
    return m ? BigInt(`0x${m[1]}`) : null;
  } catch {
    return null;
  }
}

/** Which of `wanted` the effective set lacks ([] when it cannot be read: nothing to say). */
export function missingCaps(wanted: CapName[], eff: bigint | null = effectiveCaps()): CapName[] {
  if (eff === null) return [];
  return wanted.filter((c) => ((eff >> BigInt(CAPS[c])) & 1n) === 0n);
}

/** "A, B and C". */
export function listCaps(names: string[]): string {
  return names.length <= 1 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}
