/**
 * `pathlens report FILE` and `pathlens diff A B`: recorded runs (trace's `-o`/`--jsonl`, in any
 * mode, or the monitor's path windows) read back into every view the live run has: mtr -r's
 * table, mtr's JSON and CSV, the HTML page; and two runs, or two stretches of one run, compared
 * hop by hop. See replay.ts for what a source may be.
 */
import { dirname } from 'node:path';
import { statSync } from 'node:fs';
import { Command } from 'commander';
import { PathlensError } from '../core/errors.js';
import { writeFileAtomic } from '../io/output.js';
import { DIFF_SCHEMA, diffHops } from '../path/diff.js';
import { diffText } from '../render/path-diff.js';
import { RoundSeries, reportHtml } from '../render/trace-html.js';
import { reportCsv, reportJson, reportText } from '../render/trace-report.js';
import { type ReplayedPath, parseSource, replay } from './replay.js';

const SOURCE_HELP = 'a recording (trace -o / --jsonl, monitor -o), FILE@FROM-TO for rounds FROM..TO (monitor: windows), - for stdin';

function pick(paths: ReplayedPath[], target: string | undefined, what: string): ReplayedPath[] {
  if (target === undefined) return paths;
  const p = paths.filter((x) => x.target === target || x.start.address === target);
  if (p.length === 0) throw new PathlensError('ERR_PARSE', `${what}: no path to ${target} (there are: ${paths.map((x) => x.target).join(', ')})`);
  return p;
}

function input(p: ReplayedPath, numeric: boolean) {
  return { start: p.start, hops: p.hops, rounds: p.rounds, names: numeric ? new Map<string, string | null>() : p.names, startedAt: p.startedAt };
}

export function reportCommand(): Command {
  return new Command('report')
    .description('print a recorded run\'s per-hop report: mtr -r\'s table (default), --json, --csv or --html FILE')
    .argument('<source>', SOURCE_HELP)
    .option('--json', 'mtr --json\'s document, with pathlens\' hops (one per path)')
    .option('--csv', 'mtr --csv\'s rows')
    .option('--html <file>', 'write the self-contained HTML page')
    .option('--target <target>', 'only the path to this target (recordings of several)')
    .option('-n, --numeric', 'addresses only (the recording\'s names are not used)')
    .action(async (source: string, o: { json?: boolean; csv?: boolean; html?: string; target?: string; numeric?: boolean }) => {
      if (o.json && o.csv) throw new PathlensError('ERR_USAGE', '--json and --csv both write to standard output: choose one');
      if (o.html !== undefined) {
        let dir = false;
        try {
          dir = statSync(dirname(o.html)).isDirectory();
        } catch {}
        if (!dir) throw new PathlensError('ERR_USAGE', `--html ${o.html}: no such directory`);
      }
      const paths = pick(await replay(parseSource(source)), o.target, source);
      for (const p of paths) {
        const x = input(p, !!o.numeric);
        if (o.json) process.stdout.write(reportJson(x));
        else if (o.csv) process.stdout.write(reportCsv(x));
        else if (o.html === undefined) process.stdout.write(`${paths.length > 1 ? `${p.target}\n` : ''}${reportText(x)}`);
      }
      if (o.html !== undefined) {
        if (paths.length > 1) throw new PathlensError('ERR_USAGE', `--html writes one path: choose it with --target (${paths.map((x) => x.target).join(', ')})`);
        writeFileAtomic(o.html, reportHtml({ ...input(paths[0], !!o.numeric), series: new RoundSeries() }));
      }
    });
}

export function diffCommand(): Command {
  return new Command('diff')
    .description('compare two recorded runs (or two stretches of one, FILE@1-10 FILE@11-20) hop by hop: addresses added and removed, loss and RTT changes')
    .argument('<a>', SOURCE_HELP)
    .argument('<b>', SOURCE_HELP)
    .option('--json', `one ${DIFF_SCHEMA} document per path`)
    .option('--target <target>', 'only the path to this target')
    .option('--exit-code', 'exit 3 when a hop changed (for scripts)')
    .action(async (a: string, b: string, o: { json?: boolean; target?: string; exitCode?: boolean }) => {
      const pa = pick(await replay(parseSource(a)), o.target, a);
      const pb = pick(await replay(parseSource(b)), o.target, b);
      let changed = false;
      let compared = 0;
      for (const x of pa) {
        const y = pb.find((p) => p.target === x.target) ?? (pa.length === 1 && pb.length === 1 ? pb[0] : undefined);
        if (!y) continue;
        compared++;
        const d = diffHops(x.hops, y.hops);
        if (d.some((h) => h.changed)) changed = true;
        if (o.json) process.stdout.write(`${JSON.stringify({ schema: DIFF_SCHEMA, target: x.target, a: { source: a, rounds: x.rounds }, b: { source: b, rounds: y.rounds }, hops: d, changed: d.filter((h) => h.changed).map((h) => h.ttl) })}\n`);
        else process.stdout.write(diffText(x.target, `${a} (${x.rounds} rounds)`, `${b} (${y.rounds} rounds)`, d));
      }
      if (compared === 0) throw new PathlensError('ERR_PARSE', `${a} and ${b} have no target in common (${pa.map((x) => x.target).join(', ')} / ${pb.map((x) => x.target).join(', ')})`);
      if (changed && o.exitCode) process.exitCode = 3;
    });
}
