/**
 * The outputs every event-stream command offers: --jsonl (events to stdout), -o FILE (events to
 * a file, the human view on the terminal), --quiet (no human view); the human view otherwise.
 */
import { type Sink, Tee } from '../core/sink.js';
import { JsonlSink } from '../export/jsonl.js';
import { SyncFile } from '../io/output.js';

export interface OutputOpts {
  jsonl?: boolean;
  jsonlFile?: string;
  quiet?: boolean;
}

export function eventOutputs<E>(opts: OutputOpts, view: (write: (line: string) => void) => Sink<E>): Tee<E> {
  const sinks: Sink<E>[] = [];
  if (opts.jsonl) sinks.push(new JsonlSink<E>(process.stdout));
  if (opts.jsonlFile) sinks.push(new JsonlSink<E>(SyncFile.open(opts.jsonlFile)));
  if (!opts.quiet && !opts.jsonl) sinks.push(view((l) => process.stdout.write(`${l}\n`)));
  // Nothing to write (--quiet): events go nowhere (a long run must not keep them).
  if (sinks.length === 0) sinks.push({ event() {} });
  return new Tee<E>(sinks);
}
