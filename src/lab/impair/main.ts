/**
 * Entry point of the impairment process: `node main.js --lab NAME --config FILE`, started by
 * `pathlens lab up` inside the lab's wire namespace and stopped by `pathlens lab down`.
 */
import { readFileSync } from 'node:fs';
import { Forwarder, parseForwarderConfig } from './forwarder.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const path = arg('--config');
if (!path) {
  process.stderr.write('pathlens impair: --config FILE is required\n');
  process.exit(2);
}
try {
  const fwd = new Forwarder(parseForwarderConfig(readFileSync(path, 'utf8')));
  const stop = () => {
    fwd.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  fwd.start();
} catch (e) {
  process.stderr.write(`pathlens impair: ${(e as Error).message}\n`);
  process.exit(1);
}
