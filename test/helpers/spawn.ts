/** A command started in the background, ready once its output shows `marker`. */
import { spawn } from 'node:child_process';

export interface Started {
  child: ReturnType<typeof spawn>;
  /** Resolves with the exit code (null when a signal ended it). */
  exit: Promise<number | null>;
  /** Resolves once stdout holds the marker; rejects if the command ends first. */
  started: Promise<void>;
  out(): string;
  err(): string;
}

export function startUntil(cmd: string, args: string[], marker: string, env: NodeJS.ProcessEnv = {}): Started {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exit = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
  const started = new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      if (out.includes(marker)) {
        clearInterval(t);
        resolve();
      } else if (child.exitCode !== null) {
        clearInterval(t);
        reject(new Error(`${args.slice(0, 2).join(' ')} exited: ${err}`));
      }
    }, 20);
  });
  return { child, exit, started, out: () => out, err: () => err };
}
