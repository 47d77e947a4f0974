/**
 * Errors with stable codes. Every error pathlens raises on purpose is a PathlensError with a code
 * listed in docs/errors.md; system call failures are SysErrors carrying errno/code/syscall like
 * Node's own system errors. The CLI prints `pathlens: <message>` and exits non-zero for both,
 * never a stack trace.
 */
import { getSystemErrorName } from 'node:util';

export type ErrorCode =
  | 'ERR_USAGE'
  | 'ERR_CONFIG'
  | 'ERR_NATIVE_LOAD'
  | 'ERR_SYSCALL'
  | 'ERR_RESOLVE'
  | 'ERR_PRIVILEGE'
  | 'ERR_SEND'
  | 'ERR_PARSE'
  | 'ERR_LAB'
  | 'ERR_LAB_EXISTS'
  | 'ERR_LAB_NOT_FOUND'
  | 'ERR_MISSING_TOOL'
  | 'ERR_BPF'
  | 'ERR_OUTPUT'
  | 'ERR_UNSUPPORTED';

export class PathlensError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'PathlensError';
  }
}

export class SysError extends PathlensError {
  readonly errno: number;
  readonly syscall: string;
  readonly sysCode: string;
  constructor(syscall: string, negErrno: number, detail?: string) {
    const errno = -negErrno;
    let name: string;
    try {
      name = getSystemErrorName(-errno);
    } catch {
      name = `E${errno}`;
    }
    super('ERR_SYSCALL', `${syscall}${detail ? ` (${detail})` : ''} failed: ${name}`);
    this.errno = errno;
    this.syscall = syscall;
    this.sysCode = name;
    this.name = 'SysError';
  }
}

/** Throws a SysError when a native call returned -errno; passes the result through otherwise. */
export function check(syscall: string, rc: number, detail?: string): number {
  if (rc < 0) throw new SysError(syscall, rc, detail);
  return rc;
}

/** Name of an errno value (positive or negative), e.g. 113 -> 'EHOSTUNREACH'. */
export function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-Math.abs(errno));
  } catch {
    return `E${Math.abs(errno)}`;
  }
}
