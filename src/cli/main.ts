/**
 * The pathlens command line. Every failure ends as `pathlens: <message>` on stderr with a
 * non-zero exit (2: usage, 1: anything else), never a stack trace (PATHLENS_DEBUG=1 shows it).
 */
import { Command, CommanderError } from 'commander';
import { PathlensError } from '../core/errors.js';
import { version } from '../core/version.js';
import { labCommand } from './lab.js';
import { traceCommand } from './trace.js';

export async function main(argv: string[]): Promise<number> {
  const program = new Command('pathlens')
    .description('network path and latency toolkit')
    .version(version())
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .showHelpAfterError('(run with --help for usage)')
    .enablePositionalOptions();
  program.addCommand(traceCommand());
  program.addCommand(labCommand());
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
