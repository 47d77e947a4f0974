/** Classic tracepoints need tracefs; a fresh machine (or container) may not have it mounted. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export function ensureTracefs(): void {
  if (['/sys/kernel/tracing/events', '/sys/kernel/debug/tracing/events'].some((d) => existsSync(d))) return;
  const r = spawnSync('mount', ['-t', 'tracefs', 'nodev', '/sys/kernel/tracing'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tracefs mounts: ${r.stderr}`);
}
