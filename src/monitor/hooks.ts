/**
 * `--on-change`: a shell command run on every state change, told what changed in PATHLENS_*
 * variables. It runs detached from the monitor's loop; a failure to start it is an `error` event.
 */
import { childProcess } from '../core/builtins.js';

export interface ChangeFacts {
  target: string;
  address: string;
  path: string | null;
  from: string | null;
  to: string;
  reason: string;
  method: string;
}

export function runChangeHook(command: string, f: ChangeFacts, onError: (message: string) => void): void {
  try {
    const child = childProcess().spawn('/bin/sh', ['-c', command], {
      stdio: 'ignore',
      env: { ...process.env, PATHLENS_TARGET: f.target, PATHLENS_ADDRESS: f.address, PATHLENS_PATH: f.path ?? '', PATHLENS_FROM: f.from ?? '', PATHLENS_TO: f.to, PATHLENS_REASON: f.reason, PATHLENS_METHOD: f.method },
    });
    child.on('error', (e) => onError(`--on-change: ${e.message}`));
  } catch (e) {
    onError(`--on-change: ${(e as Error).message}`);
  }
}
