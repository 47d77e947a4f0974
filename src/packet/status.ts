/**
 * Parse outcomes. Hot-path parsers return one of these numbers and fill a caller-owned result
 * object; nothing is thrown and nothing is allocated per packet. `describeStatus` names them for
 * messages and events.
 */
export const OK = 0;
export const ERR_TRUNCATED = -1;
export const ERR_BAD_LENGTH = -2;
export const ERR_BAD_VERSION = -3;
export const ERR_BAD_FAMILY = -4;
export const ERR_UNSUPPORTED = -5;
export const ERR_BAD_CHECKSUM = -6;
export const ERR_NOT_ERROR = -7;
export const ERR_MISSING = -8;

const NAMES: Record<number, string> = {
  [OK]: 'ok',
  [ERR_TRUNCATED]: 'truncated',
  [ERR_BAD_LENGTH]: 'bad-length',
  [ERR_BAD_VERSION]: 'bad-version',
  [ERR_BAD_FAMILY]: 'bad-family',
  [ERR_UNSUPPORTED]: 'unsupported',
  [ERR_BAD_CHECKSUM]: 'bad-checksum',
  [ERR_NOT_ERROR]: 'not-an-error',
  [ERR_MISSING]: 'missing',
};

export function describeStatus(status: number): string {
  return NAMES[status] ?? `status-${status}`;
}
