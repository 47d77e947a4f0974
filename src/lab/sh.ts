/**
 * Running the system tools the lab drives (ip, nft, tc, sysctl): synchronous, argument vectors
 * (never a shell), and failures turned into messages that quote the tool's own words.
 */
import { childProcess } from '../core/builtins.js';
import { PathlensError } from '../core/errors.js';

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], input?: string): RunResult {
  const r = childProcess().spawnSync(cmd, args, { input, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new PathlensError('ERR_MISSING_TOOL', `'${cmd}' is not installed (${toolHint(cmd)})`);
    throw new PathlensError('ERR_LAB', `cannot run ${cmd}: ${r.error.message}`);
  }
  return { status: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Runs and requires success; the error quotes the command and its stderr. */
export function must(cmd: string, args: string[], input?: string): string {
  const r = run(cmd, args, input);
  if (r.status !== 0) {
    const what = [cmd, ...args].join(' ');
    throw new PathlensError('ERR_LAB', `${what.length > 120 ? `${what.slice(0, 117)}...` : what} failed: ${(r.stderr || r.stdout).trim()}`);
  }
  return r.stdout;
}

export function toolHint(cmd: string): string {
  switch (cmd) {
    case 'ip':
    case 'tc':
      return 'apt-get install iproute2';
    case 'nft':
      return 'apt-get install nftables';
    case 'sysctl':
      return 'apt-get install procps';
    default:
      return `install ${cmd}`;
  }
}

export function hasTool(cmd: string): boolean {
  const r = childProcess().spawnSync(cmd, ['--version'], { encoding: 'utf8' });
  return !r.error;
}
