/**
 * The pathlens command line. Every failure ends as `pathlens: <message>` on stderr with a
 * non-zero exit (2: usage, 1: anything else), never a stack trace (PATHLENS_DEBUG=1 shows it).
 *
 * Only the subcommand being run is loaded: start-up time is part of every trace's wall time.
 */
import { Command, CommanderError } from 'commander';
import { PathlensError } from '../core/errors.js';
import { version } from '../core/version.js';

const SUBCOMMANDS: Record<string, () => Promise<Command>> = {
  trace: async () => (await import('./trace.js')).traceCommand(),
  lab: async () => (await import('./lab.js')).labCommand(),
  pping: async () => (await import('./pping.js')).ppingCommand(),
};

export async function main(argv: string[]): Promise<number> {
  const program = new Command('pathlens')
    .description('network path and latency toolkit')
    .version(version())
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .showHelpAfterError('(run with --help for usage)')
    .enablePositionalOptions();
  const wanted = argv[2];
  const names = wanted && SUBCOMMANDS[wanted] ? [wanted] : Object.keys(SUBCOMMANDS);
  for (const n of names) program.addCommand(await SUBCOMMANDS[n]());
  for (const c of program.commands) c.exitOverride();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help' ? 0 : 2;
    }
    const err = e as Error & { code?: string };
    if (process.env.PATHLENS_DEBUG) process.stderr.write(`${err.stack}\n`);
    const msg = err.message.replace(/^usage: /, '');
    process.stderr.write(`pathlens: ${msg}\n`);
    if (err instanceof PathlensError) return err.code === 'ERR_USAGE' ? 2 : 1;
    return err.message.startsWith('usage: ') ? 2 : 1;
  }
}
