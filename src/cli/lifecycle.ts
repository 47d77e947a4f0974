/**
 * How every command that runs until it is done or stopped ends: SIGINT, SIGTERM and SIGHUP stop
 * the run (which still ends with its done event and removes whatever it attached), and so does
 * an output that can no longer be written (src/io/output.ts). The handlers are in place before
 * the run starts, so a signal that comes while it is starting stops it as soon as it has.
 */
import type { RunHandle } from '../core/run.js';
import { onOutputFailure } from '../io/output.js';

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Starts a run and waits for it to end, stopping it on a signal or a failed output. */
export async function untilDone<H extends RunHandle<unknown>>(start: () => H | Promise<H>): Promise<{ handle: H; done: Awaited<H['done']> }> {
  let handle: H | null = null;
  let stopAsked = false;
  const stop = () => {
    stopAsked = true;
    handle?.stop();
  };
  for (const s of SIGNALS) process.on(s, stop);
  const off = onOutputFailure(stop);
  try {
    handle = await start();
    if (stopAsked) handle.stop();
    return { handle, done: (await handle.done) as Awaited<H['done']> };
  } finally {
    off();
    for (const s of SIGNALS) process.off(s, stop);
  }
}
