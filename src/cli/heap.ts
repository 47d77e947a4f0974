/**
 * How a pathlens process holds its memory, set once by the CLI at start-up, before a command's
 * modules load (process-wide settings: the library, src/api.ts, leaves them to its host).
 *
 * The young generation: V8 grows it when a burst of allocation survives, up to 16 MB a semispace,
 * and keeps it for the rest of the run. pathlens's long runs allocate in bursts over paths that
 * allocate next to nothing: a monitor's start (a target file of a hundred thousand names parsed
 * at once) and window closes (a stats event per target); pping's samples (an event each) over a
 * capture read at millions of packets a second. Held at its first size, the young generation is
 * collected more often during a burst, at a cost of microseconds each (what survives is small):
 * 13 MB less resident for a monitor of 100,000 targets (96 against 109 MiB), about 2 MiB less at
 * the peak of pping reading a 2-million-packet file. The flag is read when the young generation
 * would grow, so setting it once the process runs takes effect.
 *
 * malloc's arenas: glibc gives each thread that allocates an arena of its own (V8's compiler and
 * collector threads, a pping reading thread), and what a thread frees stays in its arena, out of
 * the others' reach. One arena for the process: about 2 MiB less at that pping peak (it reads on
 * two threads), no slower. It needs the native addon; without it the default stays.
 */
import { setFlagsFromString } from 'node:v8';
import { native } from '../native/index.js';

export function holdMemory(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
  try {
    native().mallocArenas(1);
  } catch {
    // the addon is not built: commands that need it say so; the others run with glibc's default
  }
}
