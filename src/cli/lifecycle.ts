/**
 * How every command that runs until it is done or stopped ends: SIGINT, SIGTERM and SIGHUP stop
 * the run (which still ends with its done event and removes whatever it attached), and so does
 * an output that can no longer be written (src/io/output.ts).
 */
import type { RunHandle } from '../core/run.js';
import { onOutputFailure } from '../io/output.js';

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Waits for the run to end, stopping it on a signal or a failed output. */
export async function untilDone<T>(h: RunHandle<T>): Promise<T> {
  const stop = () => h.stop();
  for (const s of SIGNALS) process.on(s, stop);
  const off = onOutputFailure(stop);
  try {
    return await h.done;
  } finally {
    off();
    for (const s of SIGNALS) process.off(s, stop);
  }
}
