/**
 * `--user NAME` on every capability: what the option says, and the drop itself (io/privilege.ts).
 * Without the option a run started through sudo becomes the user who ran sudo; `--user root`
 * keeps root.
 */
import type { CapName } from '../core/caps.js';
import { dropPrivileges, runAsFor } from '../io/privilege.js';

export const USER_HELP = 'run as this user (a name or uid) once set up, keeping only the capabilities the run needs (docs/privileges.md); default under sudo: the user who ran sudo; root: stay root';

/** Becomes the user `option` (or sudo's) names, keeping `keep`; nothing when there is no one to become. */
export function becomeUser(option: string | undefined, keep: CapName[]): void {
  const to = runAsFor(option);
  if (to) dropPrivileges(to, keep);
}
