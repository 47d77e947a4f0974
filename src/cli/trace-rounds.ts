/**
 * `pathlens trace` in continuous mode (-c N, --live, or any report option): the rounds runner,
 * and its views: the live full-screen table on a terminal, the reports (--report, --report-json,
 * --csv) on stdout at the end, --html FILE, --textfile DIR after every round, and the JSONL
 * events as always. Off a terminal with no report asked for, the text report is printed at the
 * end (as mtr does).
 */
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { type Sink, Tee } from '../core/sink.js';
import { PathlensError } from '../core/errors.js';
import { TraceTextfile } from '../export/trace-textfile.js';
import { eventOutputs } from './outputs.js';
import { untilDone } from './lifecycle.js';
import { writeFileAtomic } from '../io/output.js';
import { type LiveMode, LiveView } from '../render/trace-live.js';
import { RoundSeries, reportHtml } from '../render/trace-html.js';
import { reportCsv, reportJson, reportText } from '../render/trace-report.js';
import { ReverseResolver } from '../resolve/reverse.js';
import type { StartEvent, TraceEvent } from '../trace/events.js';
import { TraceNames } from '../trace/names.js';
import { startRounds } from '../trace/rounds.js';
import type { TraceRequest } from '../trace/request.js';

export interface RoundsCli {
  count?: number;
  live?: boolean;
  interval: number;
  report?: boolean;
  reportJson?: boolean;
  csv?: boolean;
  html?: string;
  textfile?: string;
  view: LiveMode;
  jsonl?: boolean;
  jsonlFile?: string;
  quiet?: boolean;
  numeric?: boolean;
  dnsServer?: string;
  dnsTimeout: number;
  netns?: string;
}

/** Continuous mode is asked for by -c, --live or any of its outputs. */
export function wantsRounds(o: RoundsCli): boolean {
  return o.count !== undefined || !!o.live || !!o.report || !!o.reportJson || !!o.csv || o.html !== undefined || o.textfile !== undefined;
}

/** mtr's default number of cycles when a report is asked for without -c. */
export const DEFAULT_REPORT_ROUNDS = 10;

/** Keeps what the reports need: the start event and the names. */
class Collector implements Sink<TraceEvent> {
  start: StartEvent | null = null;
  readonly names = new Map<string, string | null>();
  startedAt = Date.now();
  event(e: TraceEvent): void {
    if (e.type === 'start' && !this.start) {
      this.start = e;
      // The start event's own time, as `pathlens report` reads it from a recording.
      this.startedAt = Date.parse(e.time) || Date.now() - e.t_ms;
    } else if (e.type === 'name') this.names.set(e.addr, e.name);
  }
}

export async function runRounds(req: TraceRequest, o: RoundsCli): Promise<void> {
  const toStdout = [o.jsonl && '--jsonl', o.report && '--report', o.reportJson && '--report-json', o.csv && '--csv'].filter(Boolean);
  if (toStdout.length > 1) throw new PathlensError('ERR_USAGE', `${toStdout.join(' and ')} ${toStdout.length > 2 ? 'all' : 'both'} write to standard output: choose one (-o FILE writes events to a file)`);
  if (o.count !== undefined && o.live) throw new PathlensError('ERR_USAGE', '-c N and --live exclude each other (--live runs until interrupted)');
  const isDir = (d: string) => {
    try {
      return statSync(d).isDirectory();
    } catch {
      return false;
    }
  };
  if (o.textfile !== undefined && !isDir(o.textfile)) throw new PathlensError('ERR_USAGE', `--textfile ${o.textfile}: not a directory`);
  // The report is written at the end: its directory is checked now, not after the run.
  if (o.html !== undefined && !isDir(dirname(o.html))) throw new PathlensError('ERR_USAGE', `--html ${o.html}: no such directory`);
  const tty = process.stdout.isTTY === true && process.stdin.isTTY === true;
  const live = tty && toStdout.length === 0 && !o.quiet;
  // Off a terminal, with nothing else asked for, the text report at the end (mtr's way).
  const report = o.report || (!live && toStdout.length === 0 && !o.quiet && !o.jsonlFile && o.html === undefined && o.textfile === undefined);
  const count = o.live ? null : (o.count ?? DEFAULT_REPORT_ROUNDS);
  const names = !o.numeric;
  const collect = new Collector();
  const series = new RoundSeries();
  const sinks: Sink<TraceEvent>[] = [collect];
  if (o.jsonl || o.jsonlFile) sinks.push(eventOutputs<TraceEvent>({ jsonl: o.jsonl, jsonlFile: o.jsonlFile, quiet: true }, () => ({ event() {} })));
  if (o.html !== undefined) sinks.push(series);
  const textfile = o.textfile !== undefined ? new TraceTextfile(o.textfile, req.target) : null;
  if (textfile) {
    sinks.push(textfile);
    if (!(await textfile.flush())) return; // cannot write there: the output failure says so
  }
  const view = live ? new LiveView(process.stdout, process.stdin, { names, mode: o.view }) : null;
  if (view) sinks.push(view);
  const tee = new Tee<TraceEvent>(sinks);
  const sink = names ? new TraceNames(new ReverseResolver({ server: o.dnsServer, timeoutMs: Math.round(o.dnsTimeout * 1000), placement: { netns: o.netns } }), tee) : tee;
  let handleRef: Awaited<ReturnType<typeof startRounds>> | null = null;
  try {
    const { handle, done } = await untilDone(async () => {
      const h = await startRounds(req, sink, { count, intervalMs: Math.round(o.interval * 1000) });
      handleRef = h;
      view?.open(h);
      return h;
    });
    await sink.end();
    view?.close();
    if (done.reason === 'error' && handle.error) throw handle.error;
  } finally {
    view?.close();
  }
  const h = handleRef!;
  if (!collect.start) return;
  const input = { start: collect.start, hops: h.stats.hops(req.firstTtl), rounds: h.round, names: collect.names, startedAt: collect.startedAt };
  if (report) process.stdout.write(reportText(input));
  if (o.reportJson) process.stdout.write(reportJson(input));
  if (o.csv) process.stdout.write(reportCsv(input));
  if (o.html !== undefined) writeFileAtomic(o.html, reportHtml({ ...input, series }));
}
