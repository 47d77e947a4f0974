/**
 * What the benches share: whether a tool is installed, and one command's CPU and wall time.
 */
import { spawnSync } from 'node:child_process';

export function have(cmd: string): boolean {
  return !spawnSync(cmd, ['--version'], { encoding: 'utf8' }).error;
}

/**
 * CPU seconds (user + system, the children's) and wall seconds of one command run in a network
 * namespace, with its standard output.
 */
export function cpuOf(ns: string, cmd: string[]): { cpu: number; wall: number; out: string } {
  const t0 = process.hrtime.bigint();
  const quoted = cmd.map((c) => `'${c.replace(/'/g, "'\\''")}'`).join(' ');
  const r = spawnSync('ip', ['netns', 'exec', ns, 'sh', '-c', `${quoted} > /tmp/pl-bench-out.$$; cat /proc/$$/stat; cat /tmp/pl-bench-out.$$ >&2; rm -f /tmp/pl-bench-out.$$`], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const f = r.stdout.slice(r.stdout.lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 of /proc/PID/stat (cutime, cstime) are the 14th and 15th after the name.
  const tick = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  return { cpu: (Number(f[13]) + Number(f[14])) / tick, wall, out: r.stderr };
}
