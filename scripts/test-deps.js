// The system tools the root (netns) tests drive, beyond what a Debian machine with Node has:
// checked before those tests run and, as root where apt-get exists, installed (saying what and
// why), so that `npm test` works on a fresh machine with no other step. .ci/run relies on this
// too: it must not hide a step that the README's test command lacks.
import { spawnSync } from 'node:child_process';

export const TEST_TOOLS = [
  { cmd: 'ping', pkg: 'iputils-ping', why: 'lab reachability and MTU checks, pping and ktrace traffic' },
  { cmd: 'tcpdump', pkg: 'tcpdump', why: "pping's reference captures" },
  { cmd: 'bpftool', pkg: 'bpftool', why: 'checking that nothing stays attached after pping, ktrace and trace --bpf' },
  { cmd: 'nft', pkg: 'nftables', why: 'the NAT preset and the firewall-mark tests' },
  { cmd: 'tmux', pkg: 'tmux', why: "driving trace's live view in a terminal" },
  { cmd: 'chromium', pkg: 'chromium', why: "opening trace's HTML report headless (screenshot and DOM)" },
  { cmd: 'promtool', pkg: 'prometheus', why: "checking trace's node_exporter textfile (promtool check metrics)" },
];

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** Missing tools, installed when possible. Returns the tools still missing. */
export function ensureTestTools(log = (l) => process.stderr.write(`${l}\n`)) {
  const missing = TEST_TOOLS.filter((t) => !has(t.cmd));
  if (missing.length === 0) return [];
  const list = missing.map((t) => `${t.pkg} (${t.why})`).join(', ');
  if (process.getuid?.() !== 0 || !has('apt-get')) {
    log(`run-tests: missing for the root tests: ${list}; install them with your package manager`);
    return missing;
  }
  log(`run-tests: installing with apt-get: ${list}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const upd = spawnSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'], env });
  const inst = upd.status === 0 ? spawnSync('apt-get', ['install', '-y', '-qq', ...missing.map((t) => t.pkg)], { stdio: ['ignore', 'ignore', 'inherit'], env }) : upd;
  if (inst.status !== 0) log('run-tests: apt-get failed; the tests that need these tools will fail');
  return TEST_TOOLS.filter((t) => !has(t.cmd));
}
