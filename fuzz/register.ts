/**
 * `node --import dist/fuzz/register.js ...`: pathlens' modules (dist/src/) load instrumented for
 * coverage (hooks.ts). The fuzzer's workers are started with this import.
 */
import { register } from 'node:module';

register('./hooks.js', import.meta.url, { data: { prefix: new URL('../src/', import.meta.url).href } });
