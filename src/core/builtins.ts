/**
 * Node built-ins that cost start-up time and memory (http and https with tls, crypto: about 2 MiB
 * between them), loaded when first used rather than by every command at start-up. The CLI is one
 * ES module bundle, and a static import of a built-in there loads it at start whichever command
 * runs (bcryptjs, which imports crypto, stays outside the bundle for the same reason;
 * child_process is loaded at start all the same, by commander).
 */
import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);

export function crypto(): typeof import('node:crypto') {
  return load('node:crypto') as typeof import('node:crypto');
}

export function childProcess(): typeof import('node:child_process') {
  return load('node:child_process') as typeof import('node:child_process');
}

export function http(): typeof import('node:http') {
  return load('node:http') as typeof import('node:http');
}

export function https(): typeof import('node:https') {
  return load('node:https') as typeof import('node:https');
}
