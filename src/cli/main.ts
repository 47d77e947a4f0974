/**
 * The pathlens command line. Every failure ends as `pathlens: <message>` on stderr with a
 * non-zero exit (2: usage, 1: anything else), never a stack trace (PATHLENS_DEBUG=1 shows it).
 *
 * Only the subcommand being run is loaded: start-up time is part of every trace's wall time.
 */
import { Command, CommanderError } from 'commander';
import { PathlensError } from '../core/errors.js';
import { holdMemory } from './heap.js';
import { version } from '../core/version.js';
import { closeOutput, guardStdout, outputFailure } from '../io/output.js';

const SUBCOMMANDS: Record<string, () => Promise<Command>> = {
  trace: async () => (await import('./trace.js')).traceCommand(),
  lab: async () => (await import('./lab.js')).labCommand(),
  pping: async () => (await import('./pping.js')).ppingCommand(),
  ktrace: async () => (await import('./ktrace.js')).ktraceCommand(),
  monitor: async () => (await import('./monitor.js')).monitorCommand(),
  report: async () => (await import('./report.js')).reportCommand(),
  diff: async () => (await import('./report.js')).diffCommand(),
};

/** Every command, nested ones too, reports argument errors as `pathlens: ...` and exits 2 (not commander's exit 1). */
function ownErrors(c: Command): void {
  c.exitOverride();
  c.configureOutput({
    writeErr: (s) => process.stderr.write(s),
    outputError: (s, write) => write(s.replace(/^error: /, 'pathlens: ')),
  });
  for (const sub of c.commands) ownErrors(sub);
}

export async function main(argv: string[]): Promise<number> {
  guardStdout();
  // Before a command's modules load: their set-up is the first burst.
  holdMemory();
  const program = new Command('pathlens')
    .description('network path and latency toolkit')
    .version(version())
    .showHelpAfterError('(run with --help for usage)')
    .enablePositionalOptions();
  const wanted = argv[2];
  const names = wanted && SUBCOMMANDS[wanted] ? [wanted] : Object.keys(SUBCOMMANDS);
  for (const n of names) program.addCommand(await SUBCOMMANDS[n]());
  ownErrors(program);
  let code: number;
  try {
    await program.parseAsync(argv);
    // A command that ran another (lab exec, lab demo) passes that one's status on.
    code = typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    code = report(e);
  }
  // Whatever the command wrote must have reached stdout; an output that failed decides the status.
  await closeOutput(process.stdout);
  const f = outputFailure();
  if (f) {
    if (f.closedPipe) return 141;
    process.stderr.write(`pathlens: ${f.message}\n`);
    return 1;
  }
  return code;
}

/** One `pathlens:` line for a failed command (none when a failed output explains it); the exit status. */
function report(e: unknown): number {
  if (e instanceof CommanderError) {
    return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help' ? 0 : 2;
  }
  const err = e as Error & { code?: string };
  if (outputFailure()) return 1;
  if (process.env.PATHLENS_DEBUG) process.stderr.write(`${err.stack}\n${err.cause instanceof Error ? `cause: ${err.cause.message}\n` : ''}`);
  const msg = err.message.replace(/^usage: /, '');
  process.stderr.write(`pathlens: ${msg}\n`);
  if (err instanceof PathlensError) return err.code === 'ERR_USAGE' ? 2 : 1;
  return err.message.startsWith('usage: ') ? 2 : 1;
}
