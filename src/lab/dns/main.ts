/**
 * Entry point of the lab's name server: `node main.js --lab NAME --config FILE`, started by
 * `pathlens lab up` (for labs with dns on) inside the lab's first host and stopped by `lab down`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { LabDnsServer, parseDnsServerConfig } from './server.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const path = arg('--config');
if (!path) {
  process.stderr.write('pathlens lab dns: --config FILE is required\n');
  process.exit(2);
}
try {
  const cfg = parseDnsServerConfig(readFileSync(path, 'utf8'));
  const srv = new LabDnsServer(cfg);
  await srv.start();
  const stop = () => {
    srv.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  writeFileSync(cfg.readyPath, `${process.pid}\n`);
} catch (e) {
  process.stderr.write(`pathlens lab dns: ${(e as Error).message}\n`);
  process.exit(1);
}
